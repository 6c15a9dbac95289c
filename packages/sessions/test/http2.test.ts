import { connect } from 'node:http2'
import Fastify from 'fastify'
import t from 'tap'
import { rtCore } from '@rt/core'
import { rtSessions } from '../src/index.js'
import { RoomChannel, cookieAuth, newId } from './helpers.js'

t.test('HTTP/2: a same-origin page with cookies is told by :authority (there is no Host header)', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(rtCore, { channels: { RoomChannel }, authenticate: cookieAuth })
  await app.register(rtSessions, { prefix: '/sessions' })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const session = connect(base)
  t.teardown(() => session.close())
  const status = (origin: string): Promise<unknown> => new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': `/sessions/${newId()}`, origin, cookie: 'user=alice', 'content-type': 'application/json' })
    stream.on('response', (headers) => resolve(headers[':status']))
    stream.on('error', reject)
    stream.resume()
    stream.end(JSON.stringify([{ identifier: { channel: 'RoomChannel', room: 'h2' }, subscribe: true }]))
  })
  t.equal(await status(base), 200, 'same origin, with cookies')
  t.equal(await status('https://evil.example'), 403, 'another site with cookies is still refused')
})
