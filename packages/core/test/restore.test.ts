/**
 * Issue 21: a restored session (a reconnect with `?sid=`) keeps order — the
 * backlog its client asks for goes out before anything newer — and a client that
 * subscribes again after the restore (Action Cable's own protocol ignores
 * `restored`) is confirmed again.
 */
import t, { type Test } from 'tap'
import type { Channels } from '../src/hub/channels.js'
import { buildIdentifier, type DataMessage, type ServerMessage } from '../src/hub/protocol.js'
import type { Session } from '../src/hub/session.js'
import type { Hub } from '../src/hub/hub.js'
import { makeHub, RecordingSink, request, tick } from './helpers.js'

const room = buildIdentifier({ channel: 'Room', id: 'a' })
let allowed = true
let subscribedCalls = 0
const channels: Channels = {
  Room: {
    subscribed(ctx) {
      subscribedCalls++
      if (!allowed) return ctx.reject()
      ctx.streamFrom(`room_${String(ctx.params.id)}`)
    }
  }
}

async function connect(hub: Hub, options: Parameters<Hub['connect']>[2] = {}): Promise<{ session: Session; sink: RecordingSink }> {
  const sink = new RecordingSink()
  const result = await hub.connect(request(), sink, options)
  if (!('session' in result)) throw new Error('rejected')
  return { session: result.session, sink }
}

/** What a client sees: data messages by payload, control messages by type. */
const seen = (messages: ServerMessage[]): unknown[] => messages.map((m) => ('type' in m && m.type !== undefined ? m.type : (m as DataMessage).message))

/** A session that read n=1…5 of room_a and went away; n=6…10 were published meanwhile. */
async function away(t: Test, mode: 'live' | 'pull', options: Parameters<typeof makeHub>[1] = {}) {
  allowed = true
  const made = makeHub(t, { channels, ...options })
  const first = await connect(made.hub, { mode })
  await first.session.handle({ command: 'subscribe', identifier: room })
  for (let n = 1; n <= 5; n++) await made.broker.publish('room_a', { n })
  const last = (first.sink.messages.at(-1) as DataMessage)
  if (mode === 'pull') {
    first.session.detach()
    await first.session.confirm()
  } else {
    await first.session.close()
  }
  for (let n = 6; n <= 10; n++) await made.broker.publish('room_a', { n })
  return { ...made, sid: first.session.sid, last: { offset: last.offset!, epoch: last.epoch! } }
}

t.test('live restore: messages published after the restore wait for the history the client asks for', async (t) => {
  const { hub, broker, sid, last } = await away(t, 'live')
  const restored = await connect(hub, { restoreSid: sid })
  t.match(restored.sink.messages[0], { type: 'welcome', restored: true, restored_ids: [room] })
  await broker.publish('room_a', { n: 11 })
  await broker.publish('room_a', { n: 12 })
  // AnyCable's extended client asks for what it missed from its last position.
  await restored.session.handle({ command: 'history', identifier: room, history: { since: 1, streams: { room_a: last } } })
  await broker.publish('room_a', { n: 13 })
  t.same(seen(restored.sink.messages.slice(1)), [
    { n: 6 }, { n: 7 }, { n: 8 }, { n: 9 }, { n: 10 }, 'confirm_history', { n: 11 }, { n: 12 }, { n: 13 }
  ], 'backlog first, then what was held, then live — each once')
})

t.test('pull restore (long polling): the history request of a later poll still goes first', async (t) => {
  const { hub, broker, sid, last } = await away(t, 'pull')
  const connected = await connect(hub, { restoreSid: sid, mode: 'pull' })
  await broker.publish('room_a', { n: 11 })
  connected.session.detach()
  await connected.session.confirm()
  await broker.publish('room_a', { n: 12 })
  const poll = new RecordingSink()
  const session = (await hub.resume(connected.session.sid, poll))!
  t.same(poll.messages, [], 'nothing before the client asked')
  await session.handle({ command: 'history', identifier: room, history: { since: 1, streams: { room_a: last } } })
  t.same(seen(poll.messages), [{ n: 6 }, { n: 7 }, { n: 8 }, { n: 9 }, { n: 10 }, 'confirm_history', { n: 11 }, { n: 12 }])
  session.detach()
  await session.confirm()
  await broker.publish('room_a', { n: 13 })
  const next = new RecordingSink()
  const again = (await hub.resume(connected.session.sid, next))!
  t.same(seen(next.messages), [{ n: 13 }], 'the wait is over for good')
  again.detach()
})

t.test('a subscribe for an identifier the session holds is confirmed again (Action Cable clients after a restore)', async (t) => {
  const { hub, broker, sid } = await away(t, 'pull')
  const calls = subscribedCalls
  const connected = await connect(hub, { restoreSid: sid, mode: 'pull' })
  await broker.publish('room_a', { n: 11 })
  connected.session.detach()
  await connected.session.confirm()
  const poll = new RecordingSink()
  const session = (await hub.resume(connected.session.sid, poll))!
  // actioncable-v1-json ignores `restored` and subscribes again, then waits for the ack.
  t.same(await session.handle({ command: 'subscribe', identifier: room }), { ok: true })
  t.equal(subscribedCalls, calls + 1, "the channel decides again, as for AnyCable's fresh session")
  await broker.publish('room_a', { n: 12 })
  t.same(seen(poll.messages), ['confirm_subscription', { n: 11 }, { n: 12 }], 'confirmed, then everything since the restore, once')
  t.same(await session.handle({ command: 'subscribe', identifier: room }), { ok: true })
  await broker.publish('room_a', { n: 13 })
  t.same(seen(poll.messages.slice(3)), ['confirm_subscription', { n: 13 }], 'again: one more confirmation, still one copy of each message')
  allowed = false
  await session.handle({ command: 'subscribe', identifier: room })
  await broker.publish('room_a', { n: 14 })
  t.same(seen(poll.messages.slice(5)), ['reject_subscription'], 'rejected now: the subscription is gone')
  t.same(session.identifiers, [])
  session.detach()
})

t.test('a re-subscribe with history: confirmation, backlog, then the held messages', async (t) => {
  const { hub, broker, sid, last } = await away(t, 'live')
  const restored = await connect(hub, { restoreSid: sid })
  await broker.publish('room_a', { n: 11 })
  await restored.session.handle({ command: 'subscribe', identifier: room, history: { since: 1, streams: { room_a: last } } })
  t.same(seen(restored.sink.messages.slice(1)), [
    'confirm_subscription', { n: 6 }, { n: 7 }, { n: 8 }, { n: 9 }, { n: 10 }, 'confirm_history', { n: 11 }
  ])
})

t.test('two restored subscriptions: each one waits for its own history', async (t) => {
  const { hub, broker, sid } = await away(t, 'live')
  const other = buildIdentifier({ channel: 'Room', id: 'b' })
  const again = await connect(hub, { restoreSid: sid })
  await again.session.handle({ command: 'subscribe', identifier: other })
  await again.session.close()
  const restored = await connect(hub, { restoreSid: again.session.sid })
  t.match(restored.sink.messages[0], { restored_ids: [room, other] })
  await broker.publish('room_a', { n: 11 })
  await broker.publish('room_b', { n: 1 })
  await restored.session.handle({ command: 'history', identifier: other, history: { since: 1 } })
  t.same(seen(restored.sink.messages.slice(1)), ['confirm_history', { n: 1 }], 'room_b goes on; room_a still waits')
  await restored.session.handle({ command: 'history', identifier: room, history: { since: 1 } })
  t.same(seen(restored.sink.messages.slice(3)), [...Array.from({ length: 10 }, (_, i) => ({ n: i + 1 })), 'confirm_history', { n: 11 }], 'since: the whole backlog first')
})

t.test('a client that never asks: the wait ends after restoreWaitMs and the streams go on from their positions', async (t) => {
  const live = await away(t, 'live', { restoreWaitMs: 30 })
  const restored = await connect(live.hub, { restoreSid: live.sid })
  await live.broker.publish('room_a', { n: 11 })
  t.same(restored.sink.messages.length, 1, 'held (welcome only)')
  while (restored.sink.messages.length < 2) await new Promise((resolve) => setTimeout(resolve, 5))
  await tick()
  t.same(seen(restored.sink.messages.slice(1)), [{ n: 11 }])
  await restored.session.close()

  const pull = await away(t, 'pull', { restoreWaitMs: 1 })
  const connected = await connect(pull.hub, { restoreSid: pull.sid, mode: 'pull' })
  connected.session.detach()
  await connected.session.confirm()
  await pull.broker.publish('room_a', { n: 11 })
  await new Promise((resolve) => setTimeout(resolve, 5))
  const poll = new RecordingSink()
  const session = (await pull.hub.resume(connected.session.sid, poll))!
  t.same(seen(poll.messages), [{ n: 11 }], 'the next poll catches up at once')
  t.equal(session.state.restoring, undefined)
  session.detach()
})

t.test('unsubscribing a restored subscription ends its wait; a closed session cancels the timer', async (t) => {
  const { hub, broker, sid } = await away(t, 'live')
  const restored = await connect(hub, { restoreSid: sid })
  t.ok(restored.session.state.restoring)
  await restored.session.handle({ command: 'unsubscribe', identifier: room })
  t.equal(restored.session.state.restoring, undefined)
  await broker.publish('room_a', { n: 11 })
  t.same(restored.sink.messages.length, 1, 'not subscribed any more')
  const other = await connect(hub, { restoreSid: restored.session.sid })
  t.equal(other.session.state.restoring, undefined, 'nothing to restore: no wait')
  await other.session.close()
})

t.test('a stream written again in a new epoch while restoring: its message comes once, in the backlog', async (t) => {
  allowed = true
  const { hub, broker } = makeHub(t, { channels })
  const quiet = buildIdentifier({ channel: 'Room', id: 'z' })
  const first = await connect(hub, { mode: 'pull' })
  await first.session.handle({ command: 'subscribe', identifier: quiet })
  first.session.detach()
  await first.session.confirm()
  const connected = await connect(hub, { restoreSid: first.session.sid, mode: 'pull' })
  connected.session.detach()
  await connected.session.confirm()
  // Parked sessions listen until their store TTL (or a message shows them gone): these stop now.
  first.session.unpark()
  connected.session.unpark()
  // Nobody listens and nothing is retained: the memory broker forgets the stream, and a publish starts a new epoch.
  broker.sweep()
  await broker.publish('room_z', { n: 1 })
  const poll = new RecordingSink()
  const session = (await hub.resume(connected.session.sid, poll))!
  await session.handle({ command: 'history', identifier: quiet, history: { since: 1 } })
  t.same(seen(poll.messages), [{ n: 1 }, 'confirm_history'])
  session.detach()
})
