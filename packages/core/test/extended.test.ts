import Fastify from 'fastify'
import t from 'tap'
import { MemoryBroker } from '../src/memory-broker.js'
import { MemoryPresenceStore, PresenceIdMismatchError } from '../src/presence-store.js'
import { rtCore } from '../src/plugin.js'
import { pingOptions } from '../src/hub/ping.js'
import { presenceStoreContract } from '../src/testing/presence-store-contract.js'
import { pingMessage } from '../src/hub/protocol.js'
import { signStream } from '../src/signing.js'
import type { Hub } from '../src/hub/hub.js'
import type { Session } from '../src/hub/session.js'
import { RecordingSink, fakeRequest, makeHub, request, tick } from './helpers.js'

const room = JSON.stringify({ channel: '$pubsub', stream_name: 'room' })

async function open(hub: Hub, identity = 'anonymous'): Promise<{ session: Session; sink: RecordingSink }> {
  const sink = new RecordingSink()
  const connected = await hub.connect(request({ 'x-user': identity }), sink)
  if (!('session' in connected)) throw new Error('rejected')
  return { session: connected.session, sink }
}

const presenceOf = (sink: RecordingSink): unknown[] =>
  sink.messages.filter((m) => 'type' in m && m.type === 'presence').map((m) => (m as { message: unknown }).message)
const dataOf = (sink: RecordingSink): unknown[] =>
  sink.messages.filter((m) => !('type' in m) || m.type === undefined).map((m) => (m as { message: unknown }).message)

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (check()) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`timed out waiting for ${what}`)
}

t.test('presence: join, events to every subscriber, one record per id, info, leave', async (t) => {
  const { hub } = makeHub(t, { publicStreams: true })
  const a = await open(hub)
  const b = await open(hub)
  const b2 = await open(hub)
  await a.session.handle({ command: 'subscribe', identifier: room, presence: { id: 'alice', info: { name: 'Alice' } } })
  await b.session.handle({ command: 'subscribe', identifier: room })
  await b2.session.handle({ command: 'subscribe', identifier: room })
  t.same(await b.session.handle({ command: 'join', identifier: room, presence: { id: 'bob', info: { name: 'Bob' } } }), { ok: true })
  t.same(await b2.session.handle({ command: 'join', identifier: room, presence: { id: 'bob', info: { name: 'Bob' } } }), { ok: true }, 'a second tab')
  await tick()
  t.same(presenceOf(a.sink), [{ type: 'join', id: 'alice', info: { name: 'Alice' } }, { type: 'join', id: 'bob', info: { name: 'Bob' } }],
    'the joiner sees its own join; a second session of an id is no new join')
  a.sink.clear()
  await a.session.handle({ command: 'presence', identifier: room })
  t.same(a.sink.messages, [{ type: 'presence', identifier: room, message: {
    type: 'info', total: 2, records: [{ id: 'alice', info: { name: 'Alice' } }, { id: 'bob', info: { name: 'Bob' } }]
  } }])
  a.sink.clear()
  await a.session.handle({ command: 'presence', identifier: room, data: { return_records: false } })
  t.same(presenceOf(a.sink), [{ type: 'info', total: 2, records: [] }])
  a.sink.clear()
  t.same(await b.session.handle({ command: 'leave', identifier: room }), { ok: true })
  await tick()
  t.same(presenceOf(a.sink), [], 'bob still has a tab')
  await b2.session.handle({ command: 'unsubscribe', identifier: room })
  await tick()
  t.same(presenceOf(a.sink), [{ type: 'leave', id: 'bob' }], 'unsubscribing the last tab leaves')
  t.same(await b.session.handle({ command: 'leave', identifier: room }), { ok: true }, 'leaving twice is harmless')
  t.same(await b.session.handle({ command: 'join', identifier: room, presence: { id: 'bob' } }), { ok: true })
  t.match(await b.session.handle({ command: 'join', identifier: room, presence: { id: 'carol' } }), { ok: false, error: /presence id mismatch/ })
  t.match(await b.session.handle({ command: 'join', identifier: '{"channel":"$pubsub","stream_name":"x"}', presence: { id: 'bob' } }), { ok: false, error: /unknown subscription/ })
  t.match(await b.session.handle({ command: 'join', identifier: room }), { ok: false, error: /presence/ }, 'join needs a presence record')
})

t.test('presence: records expire a presence TTL after their session ends; restore keeps them', async (t) => {
  const { hub } = makeHub(t, { publicStreams: true, presenceTtl: 0.05 })
  const watcher = await open(hub)
  await watcher.session.handle({ command: 'subscribe', identifier: room })
  const a = await open(hub)
  await a.session.handle({ command: 'subscribe', identifier: room, presence: { id: 'alice' } })
  await a.session.close()
  await until(() => presenceOf(watcher.sink).length === 2, 'the leave after the TTL')
  t.same(presenceOf(watcher.sink), [{ type: 'join', id: 'alice' }, { type: 'leave', id: 'alice' }])

  watcher.sink.clear()
  const b = await open(hub)
  await b.session.handle({ command: 'subscribe', identifier: room, presence: { id: 'bob' } })
  await b.session.close()
  const restored = await hub.connect(request(), new RecordingSink(), { restoreSid: b.session.sid })
  if (!('session' in restored)) throw new Error('rejected')
  t.equal(restored.restored, true)
  // Wait well past the TTL: the old sid's entry expired, the restored session kept the record.
  await new Promise((resolve) => setTimeout(resolve, 200))
  await hub.presence.sweep()
  t.same(presenceOf(watcher.sink), [{ type: 'join', id: 'bob' }], 'no leave while the restored session is held')
  t.same((await hub.presence.info('room', true)).records, [{ id: 'bob' }])
  await restored.session.handle({ command: 'unsubscribe', identifier: room })
  await tick()
  t.same(presenceOf(watcher.sink).at(-1), { type: 'leave', id: 'bob' })
})

t.test('presence and whispers follow AnyCable: public streams yes, signed streams per option, channels opt in', async (t) => {
  const secret = 'streams'
  const signed = JSON.stringify({ channel: '$pubsub', signed_stream_name: signStream('room', secret) })
  const plain = makeHub(t, { publicStreams: true, streamsSecret: secret }).hub
  const s = await open(plain)
  await s.session.handle({ command: 'subscribe', identifier: signed })
  t.match(await s.session.handle({ command: 'join', identifier: signed, presence: { id: 'x' } }), { ok: false, error: /not enabled/ })
  t.match(await s.session.handle({ command: 'whisper', identifier: signed, data: { typing: true } }), { ok: false, error: /not enabled/ })
  s.sink.clear()
  t.match(await s.session.handle({ command: 'presence', identifier: signed }), { ok: false })
  t.same(s.sink.messages, [{ type: 'presence', identifier: signed, message: { type: 'error' } }], 'presence answers an error')
  s.sink.clear()
  await s.session.handle({ command: 'presence', identifier: '{"channel":"Nope"}' })
  t.same(presenceOf(s.sink), [{ type: 'error' }])

  const enabled = makeHub(t, { streamsSecret: secret, streamsWhisper: true, streamsPresence: true }).hub
  const e = await open(enabled)
  const other = await open(enabled)
  await e.session.handle({ command: 'subscribe', identifier: signed })
  await other.session.handle({ command: 'subscribe', identifier: signed })
  t.same(await e.session.handle({ command: 'join', identifier: signed, presence: { id: 'x' } }), { ok: true })
  t.same(await e.session.handle({ command: 'whisper', identifier: signed, data: { typing: true } }), { ok: true })
  await tick()
  t.same(dataOf(other.sink), [{ typing: true }])
  t.same(dataOf(e.sink), [], 'never back to the sender')

  const channels = {
    Chat: {
      subscribed(ctx: import('../src/hub/channels.js').ChannelContext) {
        ctx.streamFrom(`chat_${String(ctx.params.id)}`, { whisper: true, presence: true })
        ctx.streamFrom('announcements')
        ctx.presence.join(String(ctx.identity.user), { via: 'channel' })
      },
      actions: {
        away: (ctx: import('../src/hub/channels.js').ChannelContext) => { ctx.presence.leave() },
        quiet: (ctx: import('../src/hub/channels.js').ChannelContext) => { ctx.stopStream('chat_1') }
      }
    },
    Plain: { subscribed: (ctx: import('../src/hub/channels.js').ChannelContext) => { ctx.streamFrom('plain'); ctx.presence.join('x') } }
  }
  const { hub } = makeHub(t, { channels, authenticate: (r) => ({ user: r.headers['x-user'] }) })
  const chat = JSON.stringify({ channel: 'Chat', id: 1 })
  const u1 = await open(hub, 'u1')
  const u2 = await open(hub, 'u2')
  await u1.session.handle({ command: 'subscribe', identifier: chat })
  await u2.session.handle({ command: 'subscribe', identifier: chat })
  await tick()
  t.same(presenceOf(u1.sink), [{ type: 'join', id: 'u1', info: { via: 'channel' } }, { type: 'join', id: 'u2', info: { via: 'channel' } }])
  await u2.session.handle({ command: 'whisper', identifier: chat, data: 'hi' })
  await tick()
  t.same(dataOf(u1.sink), ['hi'])
  await u2.session.handle({ command: 'message', identifier: chat, data: '{"action":"away"}' })
  await tick()
  t.same(presenceOf(u1.sink).at(-1), { type: 'leave', id: 'u2' })
  await u2.session.handle({ command: 'message', identifier: chat, data: '{"action":"quiet"}' })
  t.match(await u2.session.handle({ command: 'whisper', identifier: chat, data: 'x' }), { ok: false }, 'stopping the stream stops whispers')
  const p = await open(hub, 'u3')
  t.match(await p.session.handle({ command: 'subscribe', identifier: '{"channel":"Plain"}' }), { ok: false, error: /presence is not enabled/ },
    'joining without a presence stream is reported')
  t.match(await p.session.handle({ command: 'whisper', identifier: '{"channel":"Nope"}', data: 1 }), { ok: false, error: /unknown subscription/ })
})

t.test('remote disconnect ends every session of an identity, held now or taken up later', async (t) => {
  const { hub, store } = makeHub(t, { publicStreams: true, authenticate: (r) => ({ user: r.headers['x-user'] }) })
  const alice = await open(hub, 'alice')
  const alice2 = await open(hub, 'alice')
  const bob = await open(hub, 'bob')
  await hub.disconnectRemote('{"user":"alice"}', false)
  await until(() => alice.session.isClosed && alice2.session.isClosed, 'alice closed')
  t.same(alice.sink.messages.at(-1), { type: 'disconnect', reason: 'remote', reconnect: false })
  t.notOk(bob.session.isClosed, 'only the named identity')
  t.equal(await store.get(alice.session.sid), undefined, 'a disconnected session cannot be restored')
  // Garbage on the internal stream is ignored.
  await hub.disconnectRemote('not json', false)
  await hub.broker.publish('$rt:remote', { identifier: 42 }, { transient: true })

  // A pull session between two requests gets the disconnect on its next one.
  const pullSink = new RecordingSink()
  const pulled = await hub.connect(request({ 'x-user': 'carol' }), pullSink, { mode: 'pull' })
  if (!('session' in pulled)) throw new Error('rejected')
  await pulled.session.handle({ command: 'subscribe', identifier: room })
  await pulled.session.confirm()
  pulled.session.detach()
  await hub.disconnectRemote('{"user":"carol"}', true)
  await tick()
  const next = new RecordingSink()
  const resumed = await hub.resume(pulled.session.sid, next)
  t.same(next.messages, [{ type: 'disconnect', reason: 'remote', reconnect: false }])
  t.same(resumed?.state.subscriptions, {})
  const again = await hub.connect(request({ 'x-user': 'dave' }), new RecordingSink(), { restoreSid: pulled.session.sid })
  t.same('session' in again && again.restored, false, 'a remotely disconnected session is not restored')
})

t.test('POST /_broadcast takes the disconnect command, alone or in a batch', async (t) => {
  const app = Fastify()
  await app.register(rtCore, { broadcastKey: 'k', publicStreams: true, authenticate: (r) => ({ user: r.headers['x-user'] }) })
  t.teardown(() => app.close())
  await app.ready()
  const hub = app.rt.hub
  const alice = await open(hub, 'alice')
  const bob = await open(hub, 'bob')
  const post = (body: unknown) => app.inject({ method: 'POST', url: '/_broadcast', headers: { authorization: 'Bearer k' }, payload: JSON.stringify(body) })
  t.equal((await post({ command: 'disconnect', payload: { identifier: '{"user":"alice"}', reconnect: false } })).statusCode, 201)
  await until(() => alice.session.isClosed, 'alice closed')
  t.notOk(bob.session.isClosed)
  t.equal((await post([{ stream: 'room', data: '1' }, { command: 'disconnect', payload: { identifier: '{"user":"bob"}' } }])).statusCode, 201)
  await until(() => bob.session.isClosed, 'bob closed')
  t.same(bob.sink.messages.at(-1), { type: 'disconnect', reason: 'remote', reconnect: false })
  const bad = await post({ command: 'disconnect', payload: {} })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /payload.identifier/)
  t.match((await post([{ command: 'disconnect' }])).json().message, /publication 0: payload/)
  t.equal((await post({ command: 'explode' })).statusCode, 400)
})

t.test('ping options: ?pi= seconds and ?ptp= precision', async (t) => {
  t.same(pingOptions(fakeRequest('/events')), { ok: true, ping: { intervalMs: undefined, precision: 's' } })
  t.same(pingOptions(fakeRequest('/events?pi=10&ptp=ms')), { ok: true, ping: { intervalMs: 10_000, precision: 'ms' } })
  t.match(pingOptions(fakeRequest('/events?pi=0')), { ok: false, error: /pi/ })
  t.match(pingOptions(fakeRequest('/events?ptp=us')), { ok: false, error: /ptp/ })
  t.match(pingOptions(fakeRequest('/events?pi=1&pi=2')), { ok: false, error: /more than once/ })
  t.same(pingMessage(1_694_041_735_123, 'ns'), { type: 'ping', message: 1_694_041_735_123_000_000 })
})

t.test('MemoryPresenceStore', async (t) => {
  let now = 1000
  const store = new MemoryPresenceStore(() => now)
  t.equal(await store.add('s', 'sid1', 'u1', { n: 1 }, 100), true)
  t.equal(await store.add('s', 'sid1', 'u1', { n: 2 }, 100), false, 'joining again updates')
  await t.rejects(store.add('s', 'sid1', 'u2', {}, 100), PresenceIdMismatchError)
  t.equal(await store.add('s', 'sid2', 'u1', undefined, 300), false)
  t.equal(await store.add('t', 'sid1', 'u1', undefined, 100), true)
  t.same(await store.info('s', { records: true }), { total: 1, records: [{ id: 'u1', info: undefined }] })
  t.same(await store.info('none', { records: true }), { total: 0, records: [] })
  now = 1150
  t.same(await store.sweep(), [{ stream: 't', id: 'u1' }], 'sid2 still holds u1 in s')
  await store.touch('s', 'sid2', 1000)
  await store.touch('s', 'nobody', 1000)
  now = 1400
  t.same(await store.sweep(), [])
  t.equal(await store.remove('s', 'sid2'), 'u1')
  t.equal(await store.remove('s', 'sid2'), undefined)
  t.same(await store.info('s', { records: false }), { total: 0, records: [] })
  await store.close()
  t.ok(new MemoryBroker().presence instanceof MemoryPresenceStore)
})

t.test('plugin options', async (t) => {
  for (const [options, message] of [
    [{ presenceTtl: 0 }, /presenceTtl/],
    [{ streamsWhisper: 'yes' }, /streamsWhisper must be a boolean/],
    [{ jwtParam: 'a b', jwtSecret: 's' }, /jwtParam/],
    [{ jwtForce: true }, /jwtForce needs jwtSecret/],
    [{ jwtSecret: '' }, /jwtSecret/],
    [{ transientBacklog: 0 }, /transientBacklog must be a positive integer/],
    [{ transientBacklog: 2.5 }, /transientBacklog must be a positive integer/]
  ] as const) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(rtCore, options as never).ready() }, message)
    await app.close()
  }
  const app = Fastify()
  await app.register(rtCore, { secret: 's', jwtForce: true, jwtParam: 'token', streamsPresence: true })
  await app.ready()
  t.same(await app.rt.hub.connect(fakeRequest('/lp'), new RecordingSink()), { rejected: 'unauthorized' }, 'secret is the JWT secret')
  await app.close()
})

t.test('broker and store failures are logged, reported, never thrown', async (t) => {
  const errors: string[] = []
  const logger = { error: (_: unknown, message?: string) => { errors.push(message ?? '') }, warn: () => undefined } as never
  const broker = new MemoryBroker()
  let failing = false
  const publish = broker.publish.bind(broker)
  broker.publish = (stream, data, options) => failing && !stream.startsWith('$rt:') ? Promise.reject(new Error('down')) : publish(stream, data, options)
  const presence = broker.presence
  for (const method of ['touch', 'info', 'sweep'] as const) {
    const original = presence[method].bind(presence) as (...args: unknown[]) => Promise<unknown>
    ;(presence as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => failing ? Promise.reject(new Error('down')) : original(...args)
  }
  const { hub, store } = makeHub(t, { broker, publicStreams: true, logger, authenticate: (r) => ({ user: r.headers['x-user'] }) })
  const a = await open(hub, 'a')
  await a.session.handle({ command: 'subscribe', identifier: room, presence: { id: 'a' } })
  failing = true
  t.match(await a.session.handle({ command: 'whisper', identifier: room, data: 1 }), { ok: false, error: /broker unavailable/ })
  const c = await open(hub, 'c')
  t.match(await c.session.handle({ command: 'subscribe', identifier: room, presence: { id: 'c' } }), { ok: false, error: /presence update failed/ })
  a.sink.clear()
  await a.session.handle({ command: 'presence', identifier: room })
  t.same(presenceOf(a.sink), [{ type: 'error' }])
  await hub.presence.sweep()
  const b = await open(hub, 'b')
  const del = store.delete.bind(store)
  store.delete = () => Promise.reject(new Error('down'))
  await hub.disconnectRemote('{"user":"b"}', false)
  await until(() => errors.includes('@rt/core: remote disconnect failed'), 'the logged failure')
  store.delete = del
  t.ok(b.session.isClosed)
  await a.session.close()
  hub.presence.hold({ sid: 'held', subscriptions: { x: { channel: '$pubsub', params: {}, streams: ['room'], presence: 'room', member: { id: 'h' } } } })
  await until(() => errors.includes('@rt/core: presence refresh failed'), 'the refresh failure')
  errors.splice(errors.indexOf('@rt/core: presence refresh failed'), 1)
  t.match(errors, ['@rt/core: whisper failed', '@rt/core: presence update failed', '@rt/core: reading presence failed',
    '@rt/core: presence sweep failed', '@rt/core: remote disconnect failed', '@rt/core: presence expiry failed'])
})

t.test('recent disconnects are bounded by age and count', async (t) => {
  const { RecentDisconnects, canonicalIdentity } = await import('../src/hub/remote-disconnect.js')
  let now = 0
  const recent = new RecentDisconnects(100, 2, () => now)
  recent.record(canonicalIdentity({ u: 1 }))
  recent.record(canonicalIdentity({ u: 2 }))
  recent.record(canonicalIdentity({ u: 3 }))
  t.equal(recent.ended({ u: 1 }, 0), false, 'the oldest went over the count')
  t.equal(recent.ended({ u: 3 }, 0), true)
  t.equal(recent.ended({ u: 3 }, 1), false, 'a session created after the command is not ended')
  now = 200
  t.equal(recent.ended({ u: 3 }, 0), false, 'expired')
  t.equal(canonicalIdentity({ b: [{ d: 1, c: 2 }], a: null }), '{"a":null,"b":[{"c":2,"d":1}]}')
})

t.test('a held pull session is disconnected at once; a broker without presence gets an in-process store', async (t) => {
  const inner = new MemoryBroker()
  t.teardown(() => inner.close())
  const broker = {
    publish: inner.publish.bind(inner), subscribe: inner.subscribe.bind(inner), history: inner.history.bind(inner),
    position: inner.position.bind(inner), remove: inner.remove.bind(inner), close: async () => undefined
  }
  const { hub } = makeHub(t, { broker: broker as never, publicStreams: true, authenticate: (r) => ({ user: r.headers['x-user'] }) })
  t.ok(hub.presence.store instanceof MemoryPresenceStore)
  const sink = new RecordingSink()
  const pulled = await hub.connect(request({ 'x-user': 'p' }), sink, { mode: 'pull' })
  if (!('session' in pulled)) throw new Error('rejected')
  await pulled.session.handle({ command: 'subscribe', identifier: room })
  await hub.disconnectRemote('[1]', false)
  await hub.disconnectRemote('{"user":"p"}', false)
  await until(() => Object.keys(pulled.session.state.subscriptions).length === 0, 'subscriptions dropped')
  t.ok(pulled.session.isClosed)
  t.same(sink.messages.at(-1), { type: 'disconnect', reason: 'remote', reconnect: false })
})

presenceStoreContract(t, {
  async create() {
    const store = new MemoryPresenceStore()
    return [store, store]
  }
})

t.test('a pull session refreshes its presence deadlines when taken up, at most every third of the TTL', async (t) => {
  const { hub } = makeHub(t, { publicStreams: true, presenceTtl: 0.06 })
  let touches = 0
  const touch = hub.presence.store.touch.bind(hub.presence.store)
  hub.presence.store.touch = (...args) => { touches++; return touch(...args) }
  const session = { sid: 'p', subscriptions: { x: { channel: '$pubsub', params: {}, streams: ['room'], presence: 'room', member: { id: 'p' } } } }
  hub.presence.hold(session)
  await tick()
  t.equal(touches, 1, 'refreshed when taken up')
  hub.presence.release({ ...session })
  hub.presence.release(session)
  hub.presence.hold(session)
  hub.presence.release(session)
  t.equal(touches, 1, 'not again right after')
  await new Promise((resolve) => setTimeout(resolve, 150))
  await hub.presence.sweep()
  hub.presence.hold(session)
  await tick()
  t.equal(touches, 2, 'again once its last refresh is old (and forgotten)')
  hub.presence.release(session)
})
