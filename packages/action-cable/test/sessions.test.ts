import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import t from 'tap'
import { rtCore } from '@rt/core'
import { rtSessions } from '@rt/sessions'
import { rtActionCable } from '../src/index.js'
import { startCable } from './fixture/cable.mjs'
import { json, open } from './helpers.js'

const cable = await startCable()
t.teardown(() => cable.stop())

const lobby = { channel: 'ChatChannel', room: 'lobby' }
const ann = { cookie: 'user=ann' }

async function sessionsApp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const app = Fastify()
  await app.register(rtCore)
  await app.register(rtActionCable, { url: cable.url, origin: cable.origin, reconnectDelay: 50, reconnectMaxDelay: 200 })
  await app.register(rtSessions, { prefix: '/sessions', multipleListeners: true })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return `${origin}/sessions/${randomBytes(16).toString('base64url')}`
}

async function post(url: string, body: unknown, headers: Record<string, string> = ann): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) })
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
}

t.test('session API in bridge mode: the seed\'s messages, two listeners, speak, broadcast, upstream restart', async (t) => {
  const url = await sessionsApp(t)
  const refused = await post(url, [{ identifier: lobby, subscribe: true }], {})
  t.equal(refused.status, 401, 'no cookie: the upstream refuses, so does the session API')

  const first = await open(url, { headers: ann })
  const second = await open(url, { headers: ann })
  t.equal(first.status, 200)
  t.equal(second.status, 200)
  const subscribed = await post(url, [{ identifier: lobby, subscribe: true }])
  t.equal(subscribed.status, 200)
  for (const listener of [first, second]) {
    const connected = json(await listener.nextMatching((e) => (json(e) as { type: string }).type === 'connected')) as Record<string, unknown>
    t.match(connected, { type: 'connected', identifier: lobby, session_id: String, chan_id: String, msg_id: String, time: String })
  }

  t.equal((await post(url, [{ identifier: lobby, send: { action: 'speak', text: 'hi' } }])).status, 200)
  for (const listener of [first, second]) {
    const received = json(await listener.nextMatching((e) => (json(e) as { type: string }).type === 'received')) as Record<string, unknown>
    t.match(received, { type: 'received', identifier: lobby, message: { user: 'ann', text: 'hi' } }, 'speak round trip to every listener')
  }

  await cable.broadcast({ room: 'lobby', data: { user: 'server', text: 'to sessions' } })
  const broadcast = json(await first.nextMatching((e) => (json(e) as { type: string }).type === 'received')) as Record<string, unknown>
  t.same(broadcast.message, { user: 'server', text: 'to sessions' })

  await cable.post('/restart')
  const disconnected = json(await first.nextMatching((e) => (json(e) as { type: string }).type === 'disconnected')) as Record<string, unknown>
  t.match(disconnected, { type: 'disconnected', identifier: lobby }, 'told that the upstream connection dropped')
  t.notOk('message' in disconnected, 'disconnected carries no message')
  const reconnected = json(await first.nextMatching((e) => (json(e) as { type: string }).type === 'connected')) as Record<string, unknown>
  t.match(reconnected, { type: 'connected', identifier: lobby }, 'and connected again once re-subscribed')
  await cable.broadcast({ room: 'lobby', data: { after: 'restart' } })
  const after = json(await first.nextMatching((e) => (json(e) as { type: string }).type === 'received')) as Record<string, unknown>
  t.same(after.message, { after: 'restart' })

  const polled = await fetch(`${url}?timeout=1`, { headers: { ...ann, accept: 'application/json' } })
  t.equal(polled.status, 200, 'the session can be polled as JSON as well')
  first.close()
  second.close()
})

t.test('session API: disconnect with reconnect: false from upstream tells every listener (disconnected) and ends the streams', async (t) => {
  const url = await sessionsApp(t)
  const mia = { cookie: 'user=mia' }
  const listener = await open(url, { headers: mia })
  t.equal((await post(url, [{ identifier: lobby, subscribe: true }], mia)).status, 200)
  await listener.nextMatching((e) => (json(e) as { type: string }).type === 'connected')
  await cable.post('/kick', { user: 'mia', reason: 'banned' })
  const disconnected = json(await listener.nextMatching((e) => (json(e) as { type: string }).type === 'disconnected')) as Record<string, unknown>
  t.match(disconnected, { type: 'disconnected', identifier: lobby }, 'told, for the subscription')
  await listener.end()
  t.pass('the listener\'s stream ended')
})
