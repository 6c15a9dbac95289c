import t from 'tap'
import type { Channels } from '../src/hub/channels.js'
import { newSessionId, type HubOptions } from '../src/hub/hub.js'
import { parseJsonl } from '../src/hub/commands.js'
import { buildIdentifier, pingMessage, type DataMessage } from '../src/hub/protocol.js'
import { decodeIdentifier, type Session } from '../src/hub/session.js'
import type { MemoryBroker } from '../src/memory-broker.js'
import { MemorySessionStore } from '../src/session-store.js'
import { signStream } from '../src/signing.js'
import { fanoutMembers, makeHub, RecordingSink, request, tick } from './helpers.js'

const chat = buildIdentifier({ channel: 'ChatChannel', room: 'a' })

const channels: Channels = {
  ChatChannel: {
    async subscribed(ctx) {
      await tick()
      if (ctx.params.room === 'forbidden') return ctx.reject()
      if (ctx.params.room === 'boom') throw new Error('boom')
      ctx.transmit({ hello: ctx.identity.user ?? 'anonymous' })
      ctx.streamFrom(`chat_${String(ctx.params.room)}`)
    },
    unsubscribed(ctx) {
      unsubscribedCalls.push(ctx.identifier)
      if (ctx.params.room === 'bad-exit') throw new Error('exit')
    },
    actions: {
      async speak(ctx, data) {
        await ctx.broadcast(`chat_${String(ctx.params.room)}`, { user: ctx.identity.user, text: data.text })
      },
      echo(ctx, data) {
        ctx.transmit({ echo: data.text })
      },
      follow(ctx, data) {
        ctx.streamFrom(String(data.stream))
      },
      unfollow(ctx, data) {
        ctx.stopStream(String(data.stream))
      },
      fail() {
        throw new Error('action failed')
      }
    }
  },
  Plain: {}
}
const unsubscribedCalls: string[] = []

/** Makes the broker's history reads wait until `release()`, to pin what happens meanwhile. */
function gateHistory(broker: MemoryBroker): { release: () => void; restore: () => void } {
  const history = broker.history.bind(broker)
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  broker.history = async (stream, query) => {
    const result = await history(stream, query)
    await gate
    return result
  }
  return { release, restore: () => { broker.history = history } }
}

/** A pull session subscribed to `chat`, between two requests (detached, confirmed). */
async function pullSession(hub: ReturnType<typeof makeHub>['hub']): Promise<{ session: Session }> {
  const connected = await hub.connect(request(), new RecordingSink(), { mode: 'pull' })
  if (!('session' in connected)) throw new Error('rejected')
  await connected.session.handle({ command: 'subscribe', identifier: chat })
  connected.session.detach()
  await connected.session.confirm()
  return connected
}

async function connect(hub: ReturnType<typeof makeHub>['hub'], options: Parameters<typeof hub.connect>[2] = {}): Promise<{ session: Session; sink: RecordingSink }> {
  const sink = new RecordingSink()
  const result = await hub.connect(request(), sink, options)
  if (!('session' in result)) throw new Error('rejected')
  return { session: result.session, sink }
}

t.test('connect sends a welcome with an unguessable sid', async (t) => {
  const { hub } = makeHub(t)
  const { session, sink } = await connect(hub)
  t.match(session.sid, /^[A-Za-z0-9_-]{22}$/)
  t.same(sink.messages, [{ type: 'welcome', sid: session.sid }])
  const other = await connect(hub)
  t.not(other.session.sid, session.sid)
})

t.test('authenticate: identity, rejection, exception', async (t) => {
  const errors: unknown[] = []
  const { hub } = makeHub(t, {
    channels,
    logger: { error: (...args: unknown[]) => errors.push(args), warn: () => undefined },
    authenticate: async (req) => {
      const token = req.headers['x-token']
      if (token === 'throw') throw new Error('auth backend down')
      return token === 'good' ? { user: 'alice' } : token === 'null' ? null : false
    }
  })
  const sink = new RecordingSink()
  t.same(await hub.connect(request({ 'x-token': 'bad' }), sink), { rejected: 'unauthorized' })
  t.same(await hub.connect(request({ 'x-token': 'null' }), sink), { rejected: 'unauthorized' })
  t.same(await hub.connect(request({ 'x-token': 'throw' }), sink), { rejected: 'unauthorized' })
  t.equal(errors.length, 1, 'the exception is logged')
  t.same(sink.messages, [], 'nothing is sent to a rejected connection')
  const result = await hub.connect(request({ 'x-token': 'good' }), sink)
  t.ok('session' in result)
  if (!('session' in result)) return
  await result.session.handle({ command: 'subscribe', identifier: chat })
  t.same(sink.messages.slice(1), [
    { type: 'confirm_subscription', identifier: chat },
    { identifier: chat, message: { hello: 'alice' } }
  ], 'confirmation first, then what subscribed() transmitted')
})

t.test('subscribe, broadcast, perform, unsubscribe', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  const { session, sink } = await connect(hub)
  t.same(await session.handle(JSON.stringify({ command: 'subscribe', identifier: chat })), { ok: true })
  sink.clear()
  const published = await broker.publish('chat_a', { text: 'hi' })
  t.same(sink.messages, [{ identifier: chat, message: { text: 'hi' }, stream_id: 'chat_a', epoch: published.epoch, offset: 1 }])
  sink.clear()
  t.same(await session.handle({ command: 'message', identifier: chat, data: JSON.stringify({ action: 'speak', text: 'yo' }) }), { ok: true })
  t.same(sink.messages.map((m) => (m as DataMessage).message), [{ user: undefined, text: 'yo' }])
  sink.clear()
  await session.handle({ command: 'message', identifier: chat, data: '{"action":"echo","text":"e"}' })
  t.same(sink.messages, [{ identifier: chat, message: { echo: 'e' } }])
  t.equal(hub.listeners('chat_a'), 1)
  unsubscribedCalls.length = 0
  t.same(await session.handle({ command: 'unsubscribe', identifier: chat }), { ok: true })
  t.same(unsubscribedCalls, [chat])
  t.equal(hub.listeners('chat_a'), 0, 'the stream is released')
  t.equal(hub.streamCount, 0)
  sink.clear()
  await broker.publish('chat_a', 'after')
  t.same(sink.messages, [], 'nothing after unsubscribe (and no acknowledgement, as Rails)')
})

t.test('command errors are reported and the session stays usable', async (t) => {
  const { hub } = makeHub(t, { channels })
  const { session, sink } = await connect(hub)
  await session.handle({ command: 'subscribe', identifier: chat })
  const cases: Array<[unknown, RegExp]> = [
    ['{not json', /malformed JSON/],
    ['[1]', /must be a JSON object/],
    ['{"identifier":"x"}', /missing "command"/],
    ['{"command":"perform","identifier":"x"}', /unknown command: perform/],
    ['{"command":"subscribe"}', /invalid subscribe command: identifier/],
    [{ command: 'message', identifier: chat, data: { action: 'speak' } }, /invalid message command: data/],
    [{ command: 'unsubscribe', identifier: '{"channel":"Nope"}' }, /unknown subscription/],
    [{ command: 'message', identifier: '{"channel":"Nope"}', data: '{}' }, /unknown subscription/],
    [{ command: 'history', identifier: '{"channel":"Nope"}', history: { since: 1 } }, /unknown subscription/],
    [{ command: 'message', identifier: chat, data: 'nope' }, /JSON string/],
    [{ command: 'message', identifier: chat, data: '[1]' }, /JSON object/],
    [{ command: 'message', identifier: chat, data: '{"text":1}' }, /"action"/],
    [{ command: 'message', identifier: chat, data: '{"action":"missing"}' }, /unknown action: missing/],
    [{ command: 'message', identifier: chat, data: '{"action":"toString"}' }, /unknown action: toString/],
    [{ command: 'message', identifier: chat, data: '{"action":"fail"}' }, /action failed: fail/],
    [{ command: 'history', identifier: chat, history: {} }, /empty history request/]
  ]
  for (const [input, error] of cases) {
    const result = await session.handle(input)
    t.equal(result.ok, false, JSON.stringify(input))
    if (!result.ok) t.match(result.error, error)
  }
  t.same(await session.handle({ command: 'pong' }), { ok: true })
  sink.clear()
  await session.handle({ command: 'message', identifier: chat, data: '{"action":"echo","text":"still here"}' })
  t.same(sink.messages, [{ identifier: chat, message: { echo: 'still here' } }])
})

t.test('rejections: unknown channel, invalid identifier, reject(), exceptions', async (t) => {
  const { hub } = makeHub(t, { channels, logger: { error: () => undefined, warn: () => undefined } })
  const { session, sink } = await connect(hub)
  sink.clear()
  const identifiers = ['{"channel":"Unknown"}', 'not json', '{"room":1}', buildIdentifier({ channel: 'ChatChannel', room: 'forbidden' }), buildIdentifier({ channel: 'ChatChannel', room: 'boom' })]
  for (const identifier of identifiers) await session.handle({ command: 'subscribe', identifier })
  t.same(sink.messages, identifiers.map((identifier) => ({ type: 'reject_subscription', identifier })))
  t.same(session.identifiers, [])
  await session.handle({ command: 'subscribe', identifier: '{"channel":"Plain"}' })
  t.same(session.identifiers, ['{"channel":"Plain"}'], 'a channel without handlers confirms')
})

t.test('actions can change streams', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  const { session, sink } = await connect(hub)
  await session.handle({ command: 'subscribe', identifier: chat })
  await session.handle({ command: 'message', identifier: chat, data: '{"action":"follow","stream":"extra"}' })
  sink.clear()
  await broker.publish('extra', 1)
  t.equal(sink.messages.length, 1)
  await session.handle({ command: 'message', identifier: chat, data: '{"action":"unfollow","stream":"extra"}' })
  t.equal(hub.listeners('extra'), 0)
})

t.test('history by position, by time, rejected, attached to subscribe', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  const published = []
  for (let i = 1; i <= 5; i++) published.push(await broker.publish('chat_a', i))
  const epoch = published[0]!.epoch
  const { session, sink } = await connect(hub)
  await session.handle({ command: 'subscribe', identifier: chat, history: { streams: { chat_a: { offset: 2, epoch } } } })
  t.same(sink.types(), ['welcome', 'confirm_subscription', 'data', 'data', 'data', 'data', 'confirm_history'])
  t.same(sink.messages.slice(3, 6).map((m) => (m as DataMessage).offset), [3, 4, 5])
  sink.clear()
  await session.handle({ command: 'history', identifier: chat, history: { since: Math.floor(published[0]!.timestamp / 1000) } })
  t.same(sink.messages.map((m) => (m as DataMessage).message ?? m.type), [1, 2, 3, 4, 5, 'confirm_history'], 'since (Unix seconds) covers all')
  sink.clear()
  await session.handle({ command: 'history', identifier: chat, history: { streams: { chat_a: { offset: 1, epoch: 'other' } } } })
  t.same(sink.messages, [{ type: 'reject_history', identifier: chat }], 'another epoch')
  sink.clear()
  await session.handle({ command: 'history', identifier: chat, history: { streams: { chat_a: { offset: 99, epoch } } } })
  t.same(sink.messages, [{ type: 'reject_history', identifier: chat }], 'a position past the end')
  sink.clear()
  await broker.publish('chat_a', 6)
  sink.clear()
  await session.handle({ command: 'history', identifier: chat, history: { streams: { chat_a: { offset: 4, epoch } } } })
  t.same(sink.messages.map((m) => (m as DataMessage).offset ?? m.type), [5, 'confirm_history'], 'offset 6 came live: not repeated')
})

t.test('history: evicted position, no duplicates of live messages, broker failure', async (t) => {
  const { MemoryBroker } = await import('../src/memory-broker.js')
  const broker = new MemoryBroker({ historyLimit: 2 })
  const { hub } = makeHub(t, { channels, broker, logger: { error: () => undefined, warn: () => undefined } })
  const { session, sink } = await connect(hub)
  await session.handle({ command: 'subscribe', identifier: chat })
  let epoch = ''
  for (let i = 1; i <= 4; i++) epoch = (await broker.publish('chat_a', i)).epoch
  sink.clear()
  await session.handle({ command: 'history', identifier: chat, history: { streams: { chat_a: { offset: 1, epoch } } } })
  t.same(sink.messages, [{ type: 'reject_history', identifier: chat }])
  sink.clear()
  await session.handle({ command: 'history', identifier: chat, history: { streams: { chat_a: { offset: 2, epoch } } } })
  t.same(sink.types(), ['confirm_history'], 'offsets 3 and 4 were delivered live already')
  const failing = Object.create(broker) as typeof broker
  failing.history = async () => { throw new Error('down') }
  const hub2 = makeHub(t, { channels, broker: failing, logger: { error: () => undefined, warn: () => undefined } }).hub
  const other = await connect(hub2)
  await other.session.handle({ command: 'subscribe', identifier: chat, history: { since: 1 } })
  t.same(other.sink.types().slice(-1), ['reject_history'])
})

t.test('history on an unknown stream by time confirms with nothing', async (t) => {
  const { hub } = makeHub(t, { channels })
  const { session, sink } = await connect(hub)
  await session.handle({ command: 'subscribe', identifier: chat, history: { since: 1 } })
  t.same(sink.types(), ['welcome', 'confirm_subscription', 'data', 'confirm_history'])
})

t.test('$pubsub public and signed streams, Turbo streams', async (t) => {
  const secret = 's3cret'
  const run = async (options: { publicStreams?: boolean; streamsSecret?: string; turboStreamsSecret?: string }, identifier: string): Promise<string | undefined> => {
    const { hub } = makeHub(t, options)
    const { session, sink } = await connect(hub)
    await session.handle({ command: 'subscribe', identifier })
    const reply = sink.messages[1]
    return reply !== undefined && 'type' in reply ? reply.type : undefined
  }
  const pub = (fields: Record<string, unknown>): string => buildIdentifier({ channel: '$pubsub', ...fields })
  t.equal(await run({}, pub({ stream_name: 'chat_1' })), 'reject_subscription', 'public streams are off by default')
  t.equal(await run({ publicStreams: true }, pub({ stream_name: 'chat_1' })), 'confirm_subscription')
  t.equal(await run({ publicStreams: true }, pub({ stream_name: '' })), 'reject_subscription')
  t.equal(await run({ streamsSecret: secret }, pub({ signed_stream_name: signStream('chat_1', secret) })), 'confirm_subscription')
  t.equal(await run({ streamsSecret: secret }, pub({ signed_stream_name: signStream('chat_1', 'wrong') })), 'reject_subscription', 'wrong secret')
  t.equal(await run({ streamsSecret: secret }, pub({ signed_stream_name: 'Zm9v--deadbeef' })), 'reject_subscription', 'forged')
  t.equal(await run({ streamsSecret: secret }, pub({ signed_stream_name: 'garbage' })), 'reject_subscription', 'malformed')
  t.equal(await run({}, pub({ signed_stream_name: signStream('chat_1', secret) })), 'reject_subscription', 'no secret configured')
  const numeric = Buffer.from('42').toString('base64')
  const { hmacHex } = await import('../src/signing.js')
  t.equal(await run({ streamsSecret: secret }, pub({ signed_stream_name: `${numeric}--${hmacHex(secret, numeric)}` })), 'reject_subscription', 'non-string payload')
  const turbo = (signed: unknown): string => buildIdentifier({ channel: 'Turbo::StreamsChannel', signed_stream_name: signed })
  t.equal(await run({ streamsSecret: secret }, turbo(signStream('t', secret))), 'confirm_subscription')
  t.equal(await run({ streamsSecret: secret, turboStreamsSecret: 'turbo' }, turbo(signStream('t', 'turbo'))), 'confirm_subscription')
  t.equal(await run({ streamsSecret: secret }, turbo(42)), 'reject_subscription')
  t.equal(await run({}, turbo(signStream('t', secret))), 'reject_subscription')
})

t.test('signed stream subscription receives broadcasts', async (t) => {
  const { hub, broker } = makeHub(t, { streamsSecret: 'k' })
  const { session, sink } = await connect(hub)
  const identifier = buildIdentifier({ channel: '$pubsub', signed_stream_name: signStream('room/1', 'k') })
  await session.handle({ command: 'subscribe', identifier })
  sink.clear()
  await broker.publish('room/1', '<turbo-stream></turbo-stream>')
  t.same(sink.messages, [{ identifier, message: '<turbo-stream></turbo-stream>', stream_id: 'room/1', epoch: (await broker.position('room/1')).epoch, offset: 1 }])
})

t.test('meta: exclude_socket and broadcast_type; transient messages carry no position', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  const a = await connect(hub)
  const b = await connect(hub)
  for (const { session } of [a, b]) await session.handle({ command: 'subscribe', identifier: chat })
  a.sink.clear()
  b.sink.clear()
  await broker.publish('chat_a', 'not for a', { meta: { exclude_socket: a.session.sid } })
  await broker.publish('chat_a', { who: 1 }, { meta: { broadcast_type: 'presence', transient: true } })
  t.same(a.sink.messages, [{ type: 'presence', identifier: chat, message: { who: 1 } }])
  t.equal(b.sink.messages.length, 2)
})

t.test('a broadcast is encoded once for 10k sessions', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const identifier = buildIdentifier({ channel: '$pubsub', stream_name: 'big' })
  let encodings = 0
  const encoder = (message: unknown): string => {
    encodings++
    return JSON.stringify(message)
  }
  let written = 0
  const sink = { send: (outgoing: { encode(e: typeof encoder): string }) => { outgoing.encode(encoder); written++ } }
  for (let i = 0; i < 10_000; i++) {
    const result = await hub.connect(request(), sink)
    if ('session' in result) await result.session.handle({ command: 'subscribe', identifier })
  }
  encodings = 0
  written = 0
  await broker.publish('big', { n: 1 })
  t.equal(written, 10_000)
  t.equal(encodings, 1)
  t.equal(hub.listeners('big'), 10_000)
  t.equal(hub.streamCount, 1, 'one broker subscription for all sessions')
})

t.test('bad input in one session never affects another', async (t) => {
  const { hub, broker } = makeHub(t, { channels, logger: { error: () => undefined, warn: () => undefined } })
  const good = await connect(hub)
  const bad = await connect(hub)
  await good.session.handle({ command: 'subscribe', identifier: chat })
  for (const line of ['{', '{"command":"x"}', '{"command":"message","identifier":"x","data":"{}"}']) await bad.session.handle(line)
  await bad.session.handle({ command: 'subscribe', identifier: buildIdentifier({ channel: 'ChatChannel', room: 'boom' }) })
  good.sink.clear()
  await broker.publish('chat_a', 'ok')
  t.equal(good.sink.messages.length, 1)
})

t.test('sessions are restored by sid within sessionsTtl', async (t) => {
  let now = 0
  const store = new MemorySessionStore({ now: () => now })
  let authCalls = 0
  const { hub, broker } = makeHub(t, { channels, store, sessionsTtl: 10, authenticate: () => { authCalls++; return { user: 'bob' } } })
  const first = await connect(hub)
  await first.session.handle({ command: 'subscribe', identifier: chat })
  unsubscribedCalls.length = 0
  await first.session.close()
  await first.session.close()
  t.same(unsubscribedCalls, [chat], 'unsubscribed() runs when the connection ends')
  t.equal(hub.listeners('chat_a'), 0)
  t.equal(authCalls, 1)
  const restored = await connect(hub, { restoreSid: first.session.sid })
  t.equal(authCalls, 1, 'no authentication on restore')
  t.not(restored.session.sid, first.session.sid, 'a new sid')
  t.same(restored.sink.messages, [{ type: 'welcome', sid: restored.session.sid, restored: true, restored_ids: [chat] }])
  restored.sink.clear()
  await broker.publish('chat_a', 'live again')
  t.same(restored.sink.messages, [], 'held until the client asked for its history')
  await restored.session.handle({ command: 'history', identifier: chat, history: { since: 1 } })
  t.same(restored.sink.messages.map((m) => (m as DataMessage).message ?? m.type), ['confirm_history', 'live again'], 'streams resume without resubscribing')
  const reply = await restored.session.handle({ command: 'message', identifier: chat, data: '{"action":"speak","text":"x"}' })
  t.same(reply, { ok: true })
  t.same((restored.sink.messages.at(-1) as DataMessage).message, { user: 'bob', text: 'x' }, 'identity restored')
  const again = await connect(hub, { restoreSid: first.session.sid })
  t.notOk(again.sink.messages[0] && 'restored' in again.sink.messages[0], 'a sid restores once')
  await restored.session.close()
  now += 11_000
  const late = await connect(hub, { restoreSid: restored.session.sid })
  t.same(late.sink.messages, [{ type: 'welcome', sid: late.session.sid }], 'after the TTL: a fresh session')
  t.equal(authCalls, 3)
})

t.test('sessionsTtl 0 disables restoring', async (t) => {
  const { hub } = makeHub(t, { sessionsTtl: 0 })
  const first = await connect(hub)
  await first.session.close()
  const next = await connect(hub, { restoreSid: first.session.sid })
  t.same(next.sink.messages, [{ type: 'welcome', sid: next.session.sid }])
})

t.test('disconnect sends the reason and closes', async (t) => {
  const { hub } = makeHub(t, { channels })
  const { session, sink } = await connect(hub)
  await session.disconnect('remote', false)
  t.same(sink.messages.at(-1), { type: 'disconnect', reason: 'remote', reconnect: false })
  t.equal(session.isClosed, true)
  t.same(await session.handle({ command: 'pong' }), { ok: false, error: 'session closed' })
})

t.test('unsubscribed() exceptions are logged, not thrown', async (t) => {
  const errors: unknown[] = []
  const { hub } = makeHub(t, { channels, logger: { error: (...args: unknown[]) => errors.push(args), warn: () => undefined } })
  const { session } = await connect(hub)
  await session.handle({ command: 'subscribe', identifier: buildIdentifier({ channel: 'ChatChannel', room: 'bad-exit' }) })
  await session.close()
  t.equal(errors.length, 1)
})

t.test('pull sessions: catch up from confirmed positions, re-serve what was not confirmed', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  const first = new RecordingSink()
  const connected = await hub.connect(request(), first, { mode: 'pull' })
  if (!('session' in connected)) throw new Error('rejected')
  const { session } = connected
  await session.handle({ command: 'subscribe', identifier: chat })
  session.detach()
  t.equal(await session.confirm(), true)
  await broker.publish('chat_a', 'while away 1')
  await broker.publish('chat_a', 'while away 2')

  const poll1 = new RecordingSink()
  const resumed = await hub.resume(session.sid, poll1)
  t.ok(resumed)
  t.same(poll1.messages.map((m) => (m as DataMessage).message), ['while away 1', 'while away 2'])
  await broker.publish('chat_a', 'live')
  t.equal(poll1.messages.length, 3)
  resumed!.detach()
  // The response was cut: no confirm. The next poll gets the same messages again.
  const poll2 = new RecordingSink()
  const again = await hub.resume(session.sid, poll2)
  t.same(poll2.messages.map((m) => (m as DataMessage).message), ['while away 1', 'while away 2', 'live'])
  await again!.handle({ command: 'message', identifier: chat, data: '{"action":"echo","text":"e"}' })
  again!.detach()
  t.equal(await again!.checkpoint(), true)
  // Transmissions are kept in the outbox until confirmed.
  const poll3 = new RecordingSink()
  const third = await hub.resume(session.sid, poll3)
  t.same(poll3.messages.map((m) => (m as DataMessage).message), [{ echo: 'e' }, 'while away 1', 'while away 2', 'live'])
  third!.detach()
  t.equal(await third!.confirm(), true)
  const poll4 = new RecordingSink()
  const fourth = await hub.resume(session.sid, poll4)
  t.same(poll4.messages, [], 'confirmed messages are not served again')
  fourth!.detach()
  t.equal(await hub.resume('unknown', new RecordingSink()), undefined)
})

t.test('pull sessions: the newer of two concurrent requests wins', async (t) => {
  const { hub } = makeHub(t, { channels })
  const connected = await hub.connect(request(), new RecordingSink(), { mode: 'pull' })
  if (!('session' in connected)) throw new Error('rejected')
  connected.session.detach()
  await connected.session.confirm()
  const older = await hub.resume(connected.session.sid, new RecordingSink())
  const newer = await hub.resume(connected.session.sid, new RecordingSink())
  older!.detach()
  newer!.detach()
  t.equal(await older!.confirm(), false)
  t.equal(await newer!.confirm(), true)
})

t.test('JSONL and identifier helpers', async (t) => {
  const lines = parseJsonl('{"command":"pong"}\r\n\n  \n{"command":"x"}\n{"command":"pong"}')
  t.same(lines.map((l) => [l.line, l.result.ok]), [[1, true], [4, false], [5, true]])
  t.equal(buildIdentifier({ stream_name: 'a', channel: '$pubsub' }), '{"channel":"$pubsub","stream_name":"a"}')
  t.same(decodeIdentifier('{"channel":"C","id":1}'), { channel: 'C', params: { id: 1 } })
  t.equal(decodeIdentifier('"C"'), undefined)
  t.equal(decodeIdentifier('{"channel":""}'), undefined)
  t.same(pingMessage(1_694_041_735_123), { type: 'ping', message: 1_694_041_735 })
  t.same(pingMessage(1_694_041_735_123, 'ms'), { type: 'ping', message: 1_694_041_735_123 })
})

t.test('remote commands reach a live session wherever it is held', async (t) => {
  const { hub } = makeHub(t, { channels, publicStreams: true })
  const result = await hub.connect(request(), new RecordingSink(), { remoteCommands: true })
  if (!('session' in result)) throw new Error('rejected')
  const sink = new RecordingSink()
  const { session } = result
  session.detach()
  await session.attach(sink, { catchUp: false })
  session.acceptRemoteCommands()
  session.acceptRemoteCommands()
  t.equal(await hub.sendCommands(session.sid, [{ command: 'subscribe', identifier: chat }, { command: 'message', identifier: chat, data: '{"action":"echo","text":"remote"}' }]), true)
  await tick()
  await tick()
  t.same(sink.messages.slice(-3), [
    { type: 'confirm_subscription', identifier: chat },
    { identifier: chat, message: { hello: 'anonymous' } },
    { identifier: chat, message: { echo: 'remote' } }
  ])
  t.equal(await hub.sendCommands('nobody', [{ command: 'pong' }]), false)
  await hub.broker.publish(`$rt:session:${session.sid}`, 'not commands', { transient: true })
  await session.close()
  t.equal(hub.broker instanceof Object && (hub.broker as unknown as { streamCount: number }).streamCount, 1, 'the control stream is released (the remote commands stream stays)')
  const internal = await connect(hub)
  await internal.session.handle({ command: 'subscribe', identifier: buildIdentifier({ channel: '$pubsub', stream_name: '$rt:session:x' }) })
  t.equal((internal.sink.messages[1] as { type: string }).type, 'reject_subscription', 'internal streams are never public')
})

t.test('failures inside the hub are logged and contained', async (t) => {
  const errors: string[] = []
  const logger = { error: (_: unknown, message: string) => errors.push(message), warn: () => undefined } as unknown as HubOptions['logger']
  const { hub, broker, store } = makeHub(t, { channels, logger })
  const throwing = { send: () => { throw new Error('socket gone') } }
  const bad = await hub.connect(request(), new RecordingSink())
  if (!('session' in bad)) throw new Error('rejected')
  await bad.session.handle({ command: 'subscribe', identifier: chat })
  bad.session.detach()
  await bad.session.attach(throwing, { catchUp: false })
  const good = await connect(hub)
  await good.session.handle({ command: 'subscribe', identifier: chat })
  good.sink.clear()
  await broker.publish('chat_a', 'still delivered')
  t.equal(good.sink.messages.length, 1, 'a failing sink does not stop the others')
  t.ok(errors.some((e) => /delivering a broadcast failed/.test(e)))
  const originalSave = store.save.bind(store)
  store.save = async () => { throw new Error('store down') }
  await good.session.handle({ command: 'unsubscribe', identifier: chat })
  t.ok(errors.some((e) => /saving the session failed/.test(e)))
  store.save = originalSave
  const originalPosition = broker.position.bind(broker)
  broker.position = async () => { throw new Error('broker down') }
  t.same(await good.session.handle({ command: 'subscribe', identifier: chat }), { ok: false, error: 'broker unavailable' })
  broker.position = originalPosition
  const originalHistory = broker.history.bind(broker)
  broker.history = async () => { throw new Error('broker down') }
  await good.session.handle({ command: 'subscribe', identifier: buildIdentifier({ channel: 'ChatChannel', room: 'b' }) })
  t.ok(errors.some((e) => /catching up chat_b failed/.test(e)))
  broker.history = originalHistory
})

t.test('live messages published while a stream is caught up are held, then delivered once, in order', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  const connected = await pullSession(hub)
  await broker.publish('chat_a', 1)
  await broker.publish('chat_a', 2)
  const { release, restore } = gateHistory(broker)
  const sink = new RecordingSink()
  const resuming = hub.resume(connected.session.sid, sink)
  await tick()
  await broker.publish('chat_a', 3)
  await broker.publish('chat_a', 4)
  t.same(sink.messages, [], 'held back while history is read')
  release()
  const session = await resuming
  restore()
  t.same(sink.messages.map((m) => (m as DataMessage).message), [1, 2, 3, 4])
  session!.detach()
})

t.test('a session detached during catch-up stops there', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  const connected = await pullSession(hub)
  await broker.publish('chat_a', 1)
  const { release, restore } = gateHistory(broker)
  const sink = new RecordingSink()
  let session: Session | undefined
  const resuming = hub.resume(connected.session.sid, { send: (o) => sink.send(o) }).then((s) => { session = s })
  await tick()
  // The transport gives up (client went away) before catch-up finished.
  const held = fanoutMembers(hub, 'chat_a')[0]!.session
  held.detach()
  release()
  await resuming
  restore()
  t.same(sink.messages, [])
  t.ok(session)
  t.equal(hub.listeners('chat_a'), 0)
})

t.test('commands on a detached session change its state only', async (t) => {
  const { hub } = makeHub(t, { channels })
  const { session, sink } = await connect(hub)
  session.detach()
  sink.clear()
  t.same(await session.handle({ command: 'subscribe', identifier: chat }), { ok: true })
  t.same(session.identifiers, [chat])
  t.equal(hub.listeners('chat_a'), 0)
})

t.test('a live session that expired from the store is saved again', async (t) => {
  let now = 0
  const store = new MemorySessionStore({ now: () => now })
  const { hub } = makeHub(t, { channels, store, sessionsTtl: 1 })
  const { session } = await connect(hub)
  now += 5000
  t.equal(await store.get(session.sid), undefined)
  await session.handle({ command: 'subscribe', identifier: chat })
  t.ok(await store.get(session.sid))
})

t.test('no-op context functions outside subscribe', async (t) => {
  const calls: string[] = []
  const { hub } = makeHub(t, {
    channels: {
      Odd: {
        unsubscribed(ctx) { ctx.transmit('ignored'); ctx.reject(); calls.push('unsubscribed') },
        actions: { tryReject(ctx) { ctx.reject(); calls.push('action') } }
      }
    }
  })
  const { session, sink } = await connect(hub)
  await session.handle({ command: 'subscribe', identifier: '{"channel":"Odd"}' })
  await session.handle({ command: 'message', identifier: '{"channel":"Odd"}', data: '{"action":"tryReject"}' })
  await session.handle({ command: 'unsubscribe', identifier: '{"channel":"Odd"}' })
  t.same(calls, ['action', 'unsubscribed'])
  t.same(sink.types(), ['welcome', 'confirm_subscription'], 'reject() after subscribe and transmit() in unsubscribed do nothing')
})

t.test('subscribe with history: the backlog comes before live messages published during a slow history read', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  for (let i = 1; i <= 3; i++) await broker.publish('chat_a', i)
  const epoch = (await broker.position('chat_a')).epoch
  const { session, sink } = await connect(hub)
  const history = broker.history.bind(broker)
  let calls = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  broker.history = async (stream, query) => {
    const result = await history(stream, query)
    // The second read is the history request; hold it while live messages arrive.
    if (++calls === 2) await gate
    return result
  }
  const subscribing = session.handle({ command: 'subscribe', identifier: chat, history: { streams: { chat_a: { offset: 1, epoch } } } })
  while (calls < 2) await tick()
  await broker.publish('chat_a', 4)
  await broker.publish('chat_a', 5)
  release()
  await subscribing
  broker.history = history
  t.same(sink.messages.slice(3).map((m) => (m as DataMessage).message ?? m.type), [2, 3, 'confirm_history', 4, 5])
})

t.test('resumable: false keeps nothing in the store', async (t) => {
  const { hub, store } = makeHub(t, { channels })
  const { session } = await connect(hub, { resumable: false })
  await session.handle({ command: 'subscribe', identifier: chat })
  await session.close()
  t.equal(store.size, 0)
  t.equal(await hub.sendCommands(session.sid, []), false)
})

t.test('subscribe with history: messages published between reading the position and joining also wait for the backlog', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  for (let i = 1; i <= 3; i++) await broker.publish('chat_a', i)
  const epoch = (await broker.position('chat_a')).epoch
  const { session, sink } = await connect(hub)
  const position = broker.position.bind(broker)
  broker.position = async (stream) => {
    const result = await position(stream)
    await broker.publish('chat_a', 4)
    return result
  }
  await session.handle({ command: 'subscribe', identifier: chat, history: { streams: { chat_a: { offset: 1, epoch } } } })
  broker.position = position
  t.same(sink.messages.slice(3).map((m) => (m as DataMessage).message ?? m.type), [2, 3, 'confirm_history', 4])
})

t.test('pull sessions are told when history no longer covers their position', async (t) => {
  const { MemoryBroker } = await import('../src/memory-broker.js')
  const broker = new MemoryBroker({ historyLimit: 2 })
  const { hub } = makeHub(t, { channels, broker })
  const connected = await pullSession(hub)
  for (let i = 1; i <= 5; i++) await broker.publish('chat_a', i)
  const sink = new RecordingSink()
  const session = await hub.resume(connected.session.sid, sink)
  t.same(sink.messages.map((m) => (m as DataMessage).message ?? m.type), ['reject_history', 4, 5])
  session!.detach()
})

t.test('history from offset 0 of a dropped empty stream reads the new epoch from its start', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const identifier = buildIdentifier({ channel: '$pubsub', stream_name: 'quiet' })
  const first = await connect(hub)
  await first.session.handle({ command: 'subscribe', identifier })
  const { epoch } = await broker.position('quiet')
  await first.session.close()
  await broker.publish('quiet', 'while away')
  t.not((await broker.position('quiet')).epoch, epoch, 'the empty stream was dropped: new epoch')
  const second = await connect(hub)
  await second.session.handle({ command: 'subscribe', identifier, history: { streams: { quiet: { offset: 0, epoch } } } })
  t.same(second.sink.messages.slice(2).map((m) => (m as DataMessage).message ?? m.type), ['while away', 'confirm_history'])
})

t.test('history replayed to many sessions is encoded once per message (shared replies)', async (t) => {
  const { hub, broker } = makeHub(t, { channels })
  for (let i = 1; i <= 3; i++) await broker.publish('chat_a', i)
  const epoch = (await broker.position('chat_a')).epoch
  let encodings = 0
  const encoder = (message: unknown): string => { encodings++; return JSON.stringify(message) }
  for (let i = 0; i < 50; i++) {
    const result = await hub.connect(request(), { send: (outgoing) => { outgoing.encode(encoder) } }, { mode: 'pull' })
    if (!('session' in result)) throw new Error('rejected')
    await result.session.handle({ command: 'subscribe', identifier: chat, history: { streams: { chat_a: { offset: 0, epoch } } } })
    result.session.detach()
  }
  // 3 history messages once, plus each session's own welcome, confirmation, transmission and confirm_history.
  t.equal(encodings, 3 + 50 * 4)
  const ids = new Set(Array.from({ length: 1000 }, () => newSessionId()))
  t.equal(ids.size, 1000, 'pooled ids are all distinct')
  t.ok([...ids].every((id) => /^[A-Za-z0-9_-]{22}$/.test(id)), '22 URL-safe characters each')
})

t.test('a history answer in a new epoch moves a detached pull session on, so its next request does not send it again', async (t) => {
  const { hub, broker, store } = makeHub(t, { publicStreams: true })
  const identifier = buildIdentifier({ channel: '$pubsub', stream_name: 'quiet' })
  const result = await hub.connect(request(), new RecordingSink(), { mode: 'pull' })
  if (!('session' in result)) throw new Error('rejected')
  const { session } = result
  await session.handle({ command: 'subscribe', identifier })
  const before = (await broker.position('quiet')).epoch
  await session.confirm()
  session.detach({ park: false })
  await broker.publish('quiet', 'while away')
  const { epoch } = await broker.position('quiet')
  t.not(epoch, before, 'the empty stream was dropped: new epoch')
  await session.handle({ command: 'history', identifier, history: { streams: { quiet: { offset: 0, epoch } } } })
  await session.confirm()
  t.same((await store.get(session.sid))?.positions, { quiet: { offset: 1, epoch } }, 'the position is past the history answer')
  const next = new RecordingSink()
  const resumed = await hub.resume(session.sid, next)
  t.same(next.messages, [], 'the next request sends nothing again')
  resumed?.detach({ park: false })
})

t.test('redirect: an attached session writes to the new sink, a detached one stays without', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const identifier = buildIdentifier({ channel: '$pubsub', stream_name: 'news' })
  const { session, sink } = await connect(hub)
  await session.handle({ command: 'subscribe', identifier })
  const direct = new RecordingSink()
  session.redirect(direct)
  await broker.publish('news', 'one')
  t.same(direct.messages.map((m) => (m as DataMessage).message), ['one'], 'to the new sink')
  t.notOk(sink.messages.some((m) => (m as DataMessage).message === 'one'), 'not to the old one')
  session.detach()
  const late = new RecordingSink()
  session.redirect(late)
  await session.handle({ command: 'subscribe', identifier: buildIdentifier({ channel: '$pubsub', stream_name: 'other' }) })
  t.same(late.messages, [], 'a detached session is not given a sink')
  await session.close()
})
