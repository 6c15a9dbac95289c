import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { rtCore } from '@rt/core'
import { rtLongPoll } from '@rt/long-poll'
import { RedisBroker, RedisSessionStore } from '../src/index.js'
import { admin, cleanup, REDIS_URL, recorder, uniquePrefix } from './helpers.js'
import { longPoll, subscribeTo } from './http.js'

// A long-polling client between two polls, with no process holding a request of its: whispers and presence
// events published on one node reach it when its next poll lands on the other.
const redis = await admin(t)
const prefix = uniquePrefix('between-polls')
t.teardown(() => cleanup(redis, prefix))

async function node(t: Test): Promise<string> {
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger })
  const sessionStore = new RedisSessionStore({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger })
  const app = Fastify({ forceCloseConnections: true })
  app.addHook('onClose', async () => {
    await broker.close()
    await sessionStore.close()
  })
  await app.register(rtCore, { broker, sessionStore, publicStreams: true, broadcastKey: 'key' })
  await app.register(rtLongPoll, { pollInterval: 0.2, flushInterval: 20, keepaliveTimeout: 5 })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return `${base}/lp`
}

const identifier = (stream: string): string => JSON.stringify({ channel: '$pubsub', stream_name: stream })
const whisper = (stream: string, data: unknown): string => JSON.stringify({ command: 'whisper', identifier: identifier(stream), data })
const join = (stream: string, id: string): string => JSON.stringify({ command: 'join', identifier: identifier(stream), presence: { id, info: { id } } })
const traffic = (lines: Array<Record<string, unknown>>): unknown[] =>
  lines.filter((line) => 'message' in line && (line.type === undefined || line.type === 'presence'))
    .map((line) => [line.type ?? 'data', line.message])

async function connect(url: string, stream: string): Promise<string> {
  const connected = await longPoll(url, undefined, subscribeTo(stream))
  t.equal(connected.status, 200)
  return connected.id!
}

t.test('published on A while the client is between polls (its last poll on A), its next poll on B gets it once', async (t) => {
  const [a, b] = [await node(t), await node(t)]
  const stream = `room-${Math.random().toString(36).slice(2)}`
  const alice = await connect(a, stream)
  const bob = await connect(a, stream)
  await longPoll(a, alice, [whisper(stream, { typing: 'alice' }), join(stream, 'alice')].join('\n'))
  await fetch(a.replace('/lp', '/_broadcast'), { method: 'POST', headers: { authorization: 'Bearer key' }, body: JSON.stringify({ stream, data: '{"n":1}' }) })
  await longPoll(a, alice, whisper(stream, { typing: 'alice', again: true }))
  const next = await longPoll(b, bob)
  t.same(traffic(next.lines), [
    ['data', { typing: 'alice' }],
    ['presence', { type: 'join', id: 'alice', info: { id: 'alice' } }],
    ['data', { n: 1 }],
    ['data', { typing: 'alice', again: true }]
  ], 'in the order they were published')
  t.same(traffic((await longPoll(a, bob)).lines), [], 'once')
})

t.test('published on B while the client is between polls (its last poll on A), its next poll on B gets it once', async (t) => {
  const [a, b] = [await node(t), await node(t)]
  const stream = `room-${Math.random().toString(36).slice(2)}`
  const alice = await connect(b, stream)
  const bob = await connect(a, stream)
  await longPoll(b, alice, whisper(stream, { typing: 'alice' }))
  await longPoll(b, alice, join(stream, 'alice'))
  const next = await longPoll(b, bob)
  t.same(traffic(next.lines), [
    ['data', { typing: 'alice' }],
    ['presence', { type: 'join', id: 'alice', info: { id: 'alice' } }]
  ])
  t.same(traffic((await longPoll(b, bob)).lines), [], 'once')
  t.notOk(JSON.stringify((await longPoll(a, alice)).lines).includes('typing'), 'never to the sender')
})
