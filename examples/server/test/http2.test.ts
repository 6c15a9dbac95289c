import { readFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { connect, type ClientHttp2Session } from 'node:http2'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'
import { selfSignedCertificate } from '../src/self-signed.js'

interface Answer { status: number; headers: Record<string, unknown>; text: string }

/** One request over the HTTP/2 session; `until` ends a streaming answer once its text matches. */
function request(session: ClientHttp2Session, headers: Record<string, string>, body?: string, until?: RegExp): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers)
    let answer: Answer = { status: 0, headers: {}, text: '' }
    stream.on('response', (h) => { answer = { status: Number(h[':status']), headers: h, text: '' } })
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      answer.text += chunk
      if (until?.test(answer.text) === true) {
        stream.close()
        resolve(answer)
      }
    })
    stream.on('end', () => resolve(answer))
    stream.on('error', reject)
    stream.end(body)
  })
}

/** The HTTP version of an answer to an HTTP/1.1-only client (node:https), trusting `cert`. */
const http1Version = (url: string, cert: string): Promise<string> => new Promise((resolve, reject) => {
  httpsRequest(url, { ca: readFileSync(cert) }, (res) => {
    res.resume()
    resolve(res.httpVersion)
  }).on('error', reject).end()
})

t.test('config: TLS_KEY and TLS_CERT turn on HTTPS with HTTP/2; HTTP2=0 keeps HTTP/1.1', async (t) => {
  const { key, cert } = selfSignedCertificate()
  const on = configFromEnv({ TLS_KEY: key, TLS_CERT: cert })
  t.match(on.tls, { key: /BEGIN PRIVATE KEY/, cert: /BEGIN CERTIFICATE/ })
  t.equal(on.http2, true)
  t.equal(configFromEnv({ TLS_KEY: key, TLS_CERT: cert, HTTP2: '0' }).http2, false)
  t.equal(configFromEnv({}).tls, undefined)
  t.throws(() => configFromEnv({ TLS_KEY: key }), /TLS_KEY and TLS_CERT go together/)
  t.throws(() => configFromEnv({ TLS_KEY: key, TLS_CERT: cert, HTTP2: 'yes' }), /HTTP2 must be 0 or 1/)

  const { app } = await buildApp({ ...configFromEnv({ TLS_KEY: key, TLS_CERT: cert, HTTP2: '0' }), port: 0 })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  t.match(address, /^https:/)
  t.equal(await http1Version(`${address}/endpoints`, cert), '1.1', 'HTTPS over HTTP/1.1')
})

t.test('HTTP/2 with TLS: SSE, long polling and category polling over one connection; HTTP/1.1 still answers', async (t) => {
  const { key, cert } = selfSignedCertificate()
  const { app } = await buildApp({ ...configFromEnv({ TLS_KEY: key, TLS_CERT: cert }), broadcastKey: 'key', port: 0 })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const session = connect(address, { ca: readFileSync(cert) })
  t.teardown(() => session.close())
  await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject))
  t.equal(session.alpnProtocol, 'h2')

  // SSE: the stream opens without HTTP/1-only headers and carries a broadcast.
  const sse = request(session, { ':path': '/events?stream=h2_sse' }, undefined, /"over":"sse"/)
  while (app.rt.hub.listeners('h2_sse') === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  await app.rt.publish('h2_sse', { over: 'sse' })
  const stream = await sse
  t.equal(stream.status, 200)
  t.notOk('connection' in stream.headers, 'no Connection header on HTTP/2')
  t.match(stream.text, /event: welcome\n[\s\S]*data: \{"over":"sse"\}\nid: 1\//)

  // Long polling: connect, a poll gets the broadcast, the next one does not repeat it.
  const identifier = JSON.stringify({ channel: '$pubsub', stream_name: 'h2_lp' })
  const lp = { ':method': 'POST', ':path': '/lp', 'content-type': 'text/plain' }
  const connected = await request(session, lp, JSON.stringify({ command: 'subscribe', identifier }))
  t.match(connected.text, /"type":"welcome"[\s\S]*"type":"confirm_subscription"/)
  const pollId = String(connected.headers['x-anycable-poll-id'])
  await app.rt.publish('h2_lp', { over: 'lp' })
  t.match((await request(session, { ...lp, 'x-anycable-poll-id': pollId })).text, /"message":\{"over":"lp"\},"stream_id":"h2_lp"/)
  await app.rt.publish('h2_lp', { n: 2 })
  const next = await request(session, { ...lp, 'x-anycable-poll-id': pollId })
  t.notMatch(next.text, /"over":"lp"/, 'a delivered poll answer is not served again')
  t.match(next.text, /"n":2/)

  // Category polling: a held subscribe gets the event published meanwhile.
  const held = request(session, { ':path': '/category/events?category=h2_farm&timeout=30' })
  while ((app.rt.broker as unknown as { streams: Map<string, unknown> }).streams.get('h2_farm') === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const published = await request(session, { ':method': 'POST', ':path': '/category/publish', authorization: 'Bearer key', 'content-type': 'application/json' }, '{"category":"h2_farm","data":"oink"}')
  t.equal(published.status, 200)
  t.match(JSON.parse((await held).text), { events: [{ category: 'h2_farm', data: 'oink' }] })

  t.equal(await http1Version(`${address}/endpoints`, cert), '1.1', 'an HTTP/1.1 client is still served (allowHTTP1)')
})
