import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { HTTP2_TEST_ENV, http2UnderTest, protocolUnderTest, testCertificate, testFastify, testServerOptions, useProtocolForFetch } from '../src/testing/index.js'
import { declaredLength } from '../src/testing/protocol.js'

t.test('the switch: RT_TEST_HTTP2=1 means HTTP/2', async (t) => {
  const before = process.env[HTTP2_TEST_ENV]
  t.teardown(() => {
    if (before === undefined) delete process.env[HTTP2_TEST_ENV]
    else process.env[HTTP2_TEST_ENV] = before
  })
  delete process.env[HTTP2_TEST_ENV]
  t.equal(http2UnderTest(), false)
  t.equal(protocolUnderTest(), 'http1')
  t.same(testServerOptions(), {})
  await useProtocolForFetch()
  process.env[HTTP2_TEST_ENV] = '1'
  t.equal(protocolUnderTest(), 'http2')
  t.match(testServerOptions(), { http2: true, https: { key: /BEGIN PRIVATE KEY/, cert: /BEGIN CERTIFICATE/ } })
})

t.test('the certificate is made once, for 127.0.0.1 and localhost', async (t) => {
  const { cert } = testCertificate()
  t.equal(testCertificate().cert, cert, 'cached')
  const x509 = new X509Certificate(cert)
  t.equal(x509.checkIP('127.0.0.1'), '127.0.0.1')
  t.equal(x509.checkHost('localhost'), 'localhost')
})

t.test('an HTTP/2 test app speaks h2 over TLS; fetch reaches it, empty bodies too', async (t) => {
  const before = process.env[HTTP2_TEST_ENV]
  process.env[HTTP2_TEST_ENV] = '1'
  t.teardown(() => {
    if (before === undefined) delete process.env[HTTP2_TEST_ENV]
    else process.env[HTTP2_TEST_ENV] = before
  })
  // No @rt/core here to close the client's idle HTTP/2 session: Fastify's own option does.
  const app = testFastify({ forceCloseConnections: true }, 'http2')
  app.post('/echo', async (request) => ({ version: request.raw.httpVersion, body: request.body ?? null }))
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  t.match(base, /^https:/)
  await useProtocolForFetch()
  for (const body of ['x', '']) {
    const answer = await fetch(`${base}/echo`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body })
    t.same(await answer.json(), { version: '2.0', body }, JSON.stringify(body))
  }
})

t.test('the Content-Length a dispatched request declares, in either header form', async (t) => {
  t.equal(declaredLength({ 'Content-Length': '0' }), '0')
  t.equal(declaredLength(['accept', '*/*', 'content-length', '0']), '0')
  t.equal(declaredLength(['accept', '*/*']), undefined)
  t.equal(declaredLength({ accept: '*/*' }), undefined)
  t.equal(declaredLength(undefined), undefined)
})
