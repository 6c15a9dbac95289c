import { connect } from 'node:http2'
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
