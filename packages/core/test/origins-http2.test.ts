import { connect } from 'node:http2'
import { createConnection, type AddressInfo } from 'node:net'
import Fastify from 'fastify'
import t from 'tap'
import { originGuard } from '../src/origins.js'

t.test('HTTP/2: a same-origin request is told by :authority (there is no Host header)', async (t) => {
  const app = Fastify({ http2: true })
  app.addHook('onRequest', originGuard(undefined))
  app.get('/', async () => 'ok')
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const session = connect(base)
  t.teardown(() => session.close())
  const status = (origin: string): Promise<unknown> => new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/', origin })
    stream.on('response', (headers) => resolve(headers[':status']))
    stream.on('error', reject)
    stream.resume()
  })
  t.equal(await status(base), 200, 'same origin')
  t.equal(await status('http://elsewhere.test'), 403, 'another site is still refused')
})

t.test('a request with neither Host nor :authority (HTTP/1.0) is not same-origin', async (t) => {
  const app = Fastify()
  app.addHook('onRequest', originGuard(undefined))
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1', () => socket.end('GET / HTTP/1.0\r\nOrigin: http://127.0.0.1\r\n\r\n'))
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { text += chunk })
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  })
  t.match(answer, /^HTTP\/1\.1 403 /)
})
