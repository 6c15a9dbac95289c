/**
 * Pull sessions and transient messages: what no position can find again is kept
 * in the store until a confirmed answer carried it, by the request holding the
 * session and, between two requests, by the process that answered last.
 */
import t from 'tap'
import { Hub } from '../src/hub/hub.js'
import type { Session } from '../src/hub/session.js'
import { buildIdentifier, type DataMessage } from '../src/hub/protocol.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { MemorySessionStore, type KeptMessage } from '../src/session-store.js'
import { makeHub, RecordingSink, request } from './helpers.js'

const room = buildIdentifier({ channel: '$pubsub', stream_name: 'room' })
const whispered = (sink: RecordingSink): unknown[] =>
  sink.messages.filter((m) => !('type' in m) || m.type === undefined).map((m) => (m as DataMessage).message)

async function pullSession(hub: Hub): Promise<string> {
  const sink = new RecordingSink()
  const result = await hub.connect(request(), sink, { mode: 'pull' })
  if (!('session' in result)) throw new Error('rejected')
  await result.session.handle({ command: 'subscribe', identifier: room })
  result.session.detach({ park: false })
  await result.session.confirm()
  return result.session.sid
}

async function resume(hub: Hub, sid: string): Promise<{ session: Session; sink: RecordingSink }> {
  const sink = new RecordingSink()
  const session = await hub.resume(sid, sink)
  if (session === undefined) throw new Error('no session')
  return { session, sink }
}

const whisper = (n: number) => ({ meta: { transient: true, transient_id: `w${n}` } })

t.test('a transient message of an answer that was not confirmed comes again; once confirmed, never again', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  await broker.publish('room', { n: 1 }, whisper(1))
  t.same(whispered(first.sink), [{ n: 1 }], 'delivered live')
  first.session.detach()
  await first.session.checkpoint()
  const second = await resume(hub, sid)
  t.same(whispered(second.sink), [{ n: 1 }], 'the answer was cut: sent again')
  second.session.detach()
  await second.session.confirm()
  const third = await resume(hub, sid)
  t.same(whispered(third.sink), [], 'confirmed: gone')
  third.session.detach()
})

t.test('between two requests: kept by the process that answered last, until a newer request saved the session', async (t) => {
  const { hub: one, broker, store } = makeHub(t, { publicStreams: true })
  // A second process: its own hub on the same broker and store.
  const two = new Hub({ broker, store, publicStreams: true })
  t.teardown(() => two.close())
  const sid = await pullSession(one)
  const first = await resume(one, sid)
  first.session.detach()
  await first.session.confirm()
  t.equal(one.parked.size, 1, 'parked on the process that answered')
  await broker.publish('room', { n: 1 }, whisper(1))
  await broker.publish('room', { marker: true })
  await broker.publish('room', { n: 2 }, whisper(2))
  const elsewhere = await resume(two, sid)
  t.same(whispered(elsewhere.sink), [{ n: 1 }, { marker: true }, { n: 2 }], 'the next request, on another process, gets them in stream order')
  await elsewhere.session.checkpoint()
  await broker.publish('room', { n: 3 }, whisper(3))
  await until(() => one.parked.size === 0, 'the parked session to learn of the newer request')
  t.same(whispered(elsewhere.sink).slice(3), [{ n: 3 }], 'the request holding the session gets it live')
  elsewhere.session.detach()
  await elsewhere.session.confirm()
  const back = await resume(one, sid)
  t.same(whispered(back.sink), [], 'nothing twice: what both processes kept was retired')
  back.session.detach()
})

/** A store whose `keep` waits while `hold` is set: a keep still on its way when the next request claims. */
class SlowKeepStore extends MemorySessionStore {
  hold: Promise<void> | undefined
  override async keep(sid: string, messages: readonly KeptMessage[], limit: number): Promise<number | undefined> {
    await this.hold
    return super.keep(sid, messages, limit)
  }
}

t.test('a message kept while the next request is taking the session over comes with that request, in order', async (t) => {
  const broker = new MemoryBroker()
  const store = new SlowKeepStore()
  const { hub: one } = makeHub(t, { publicStreams: true, broker, store })
  const two = new Hub({ broker, store, publicStreams: true })
  t.teardown(() => two.close())
  const sid = await pullSession(one)
  const first = await resume(one, sid)
  first.session.detach()
  await first.session.confirm()
  let open!: () => void
  store.hold = new Promise((resolve) => { open = resolve })
  await broker.publish('room', { n: 1 }, whisper(1))
  await broker.publish('room', { marker: true })
  // The next request claims while the parked process's keep is still on its way; it lands a moment later.
  setImmediate(() => open())
  const next = await resume(two, sid)
  t.same(whispered(next.sink), [{ n: 1 }, { marker: true }], 'the request waited for it')
  next.session.detach()
})

t.test('parking ends at the store TTL, and when the hub closes', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  first.session.detach()
  await first.session.confirm(60_000)
  t.equal(hub.parked.size, 1)
  hub.parked.sweep(Date.now() + 30_000)
  t.equal(hub.parked.size, 1, 'not before its TTL')
  hub.parked.sweep(Date.now() + 61_000)
  t.equal(hub.parked.size, 0, 'after it')
  t.equal(broker.streamCount, 1, "and it no longer listens (what is left is the hub's remote commands stream)")
  const second = await resume(hub, sid)
  second.session.detach()
  t.equal(hub.parked.size, 1)
  hub.close()
  t.equal(hub.parked.size, 0, 'a closed hub parks nothing')
  t.equal(broker.streamCount, 0, 'and listens to nothing')
})

t.test('a pull session whose store cannot keep messages does not park', async (t) => {
  const { hub, store } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  Object.defineProperty(store, 'keep', { value: undefined })
  const first = await resume(hub, sid)
  first.session.detach()
  t.equal(hub.parked.size, 0)
})

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (check()) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error(`timed out waiting for ${what}`)
}
