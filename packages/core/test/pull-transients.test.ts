/**
 * Pull sessions and transient messages: what no position can find again is kept
 * in the store until a confirmed answer carried it, by the request holding the
 * session and, between two requests, by the process that answered last.
 */
import t, { type Test } from 'tap'
import type { StreamListener, StreamMessage } from '../src/broker.js'
import { Hub } from '../src/hub/hub.js'
import type { Session } from '../src/hub/session.js'
import { buildIdentifier, type DataMessage, type Outgoing } from '../src/hub/protocol.js'
import { TransientKeeper, pullStream, transientId } from '../src/hub/pull-transients.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { MemorySessionStore, type KeptMessage } from '../src/session-store.js'
import { fanoutMembers, makeHub, RecordingSink, request, tick } from './helpers.js'

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

async function resume<S extends RecordingSink = RecordingSink>(hub: Hub, sid: string, sink: S = new RecordingSink() as S): Promise<{ session: Session; sink: S }> {
  const session = await hub.resume(sid, sink)
  if (session === undefined) throw new Error('no session')
  return { session, sink }
}

const whisper = (n: number) => ({ meta: { transient: true, transient_id: `w${n}` } })


/** An answer cut (checkpoint, not confirmed) sends the whisper `{ n: 1 }` again; once confirmed it is gone. */
async function cutThenConfirmed(t: Test, hub: Hub, sid: string, first: Session): Promise<void> {
  first.detach()
  await first.checkpoint()
  const second = await resume(hub, sid)
  t.same(whispered(second.sink), [{ n: 1 }], 'the answer was cut: sent again')
  second.session.detach()
  await second.session.confirm()
  const third = await resume(hub, sid)
  t.same(whispered(third.sink), [], 'confirmed: gone')
  third.session.detach()
}

t.test('a transient message of an answer that was not confirmed comes again; once confirmed, never again', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  await broker.publish('room', { n: 1 }, whisper(1))
  t.same(whispered(first.sink), [{ n: 1 }], 'delivered live')
  await cutThenConfirmed(t, hub, sid, first.session)
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
  t.equal(broker.streamCount, 2, 'and it no longer listens (what is left: the hub\'s remote commands stream and its pull stream)')
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

/** Errors the hub logs, by message. */
function errorLog(): { errors: string[]; logger: never } {
  const errors: string[] = []
  return { errors, logger: { error: (_: unknown, message?: string) => { errors.push(message ?? '') }, warn: () => undefined } as never }
}

/** A kept message as another process would have kept it: before anything retained on `room`. */
function keptOnRoom(id: string, data: unknown): KeptMessage {
  return { id, after: { offset: 0, epoch: '' }, message: { stream: 'room', offset: 0, epoch: '', timestamp: 1, data, meta: { transient: true, transient_id: id } } }
}

const keptIds = async (store: MemorySessionStore, sid: string): Promise<string[] | undefined> =>
  (await store.get(sid))?.kept?.map((message) => message.id)

t.test('kept messages for a stream the session no longer reads are dropped at attach, and retired with the confirm', async (t) => {
  const { hub, store } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  await first.session.handle({ command: 'unsubscribe', identifier: room })
  first.session.detach({ park: false })
  await first.session.confirm()
  // Late: kept by a process where the session was parked on room before the unsubscribe.
  await store.keep(sid, [keptOnRoom('late', { n: 1 })], 100)
  const second = await resume(hub, sid)
  t.same(whispered(second.sink), [], 'not delivered: the session no longer reads room')
  second.session.detach({ park: false })
  await second.session.confirm()
  t.equal(await keptIds(store, sid), undefined, 'retired with the confirm')
  await store.keep(sid, [keptOnRoom('late', { n: 1 })], 100)
  t.equal(await keptIds(store, sid), undefined, 'and not kept again by another late keep')
})

t.test('a broker whose subscribe throws while the session parks: logged, the session does not park, nothing is left subscribed', async (t) => {
  const { errors, logger } = errorLog()
  const { hub, broker } = makeHub(t, { publicStreams: true, logger })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  await first.session.handle({ command: 'subscribe', identifier: buildIdentifier({ channel: '$pubsub', stream_name: 'lobby' }) })
  t.equal(broker.streamCount, 3, 'room, lobby and the hub\'s remote commands stream')
  const subscribe = broker.subscribe.bind(broker)
  // The process's pull stream and room succeed, lobby fails.
  broker.subscribe = (stream, listener) => {
    if (stream === 'lobby') throw new Error('down')
    return subscribe(stream, listener)
  }
  first.session.detach()
  t.same(errors, ['@rt/core: listening between two requests failed'])
  t.equal(hub.parked.size, 0, 'not parked')
  t.equal(hub.parked.streamCount, 0, 'room is no longer listened to for it')
  t.equal(broker.streamCount, 2, 'the remote commands stream and the process\'s pull stream')
  t.equal(await first.session.flushed(), 0, 'a session that is not parked kept nothing while parked')
})

/** Parks `sid` on `one` and makes its stored state name `node` as the process that parked it. */
async function parkedOn(one: Hub, store: MemorySessionStore, sid: string, node: string | undefined): Promise<void> {
  const first = await resume(one, sid)
  first.session.detach()
  await first.session.confirm()
  // The process that parked the session stops listening; the state names another one (or none).
  one.parked.close()
  const state = (await store.get(sid))!
  if (node === undefined) delete state.parkedOn
  else state.parkedOn = node
  await store.save(state, 60_000)
}

t.test('a process that answers the take-over without a count: the request reads the store again', async (t) => {
  const { hub: one, broker, store } = makeHub(t, { publicStreams: true })
  const two = new Hub({ broker, store, publicStreams: true })
  t.teardown(() => two.close())
  const sid = await pullSession(one)
  await parkedOn(one, store as MemorySessionStore, sid, 'older')
  const stop = broker.subscribe(pullStream('older'), (message) => {
    const data = message.data as { type: string; lease: number; by: string }
    if (data.type !== 'taken') return
    void store.keep!(sid, [keptOnRoom('flushed-late', { n: 1 })], 100)
      .then(() => broker.publish(pullStream(data.by), { type: 'flushed', sid, for: data.lease }, { transient: true }))
  })
  t.teardown(stop)
  const next = await resume(two, sid)
  t.same(whispered(next.sink), [{ n: 1 }], 'what it kept after the claim read the session comes with this request')
  next.session.detach()
})

t.test('a session parked by a process that names none (an older version) or by this one before it stopped: nobody is asked, the store is read again', async (t) => {
  const { hub: one, broker, store } = makeHub(t, { publicStreams: true })
  const two = new Hub({ broker, store, publicStreams: true })
  t.teardown(() => two.close())
  const published: string[] = []
  const publish = broker.publish.bind(broker)
  broker.publish = (stream, data, options) => {
    published.push(stream)
    return publish(stream, data, options)
  }
  for (const node of [undefined, two.parked.node]) {
    const sid = await pullSession(one)
    await parkedOn(one, store as MemorySessionStore, sid, node)
    await store.keep!(sid, [keptOnRoom(`late-${String(node)}`, { node: node ?? null })], 100)
    const next = await resume(two, sid)
    t.same(whispered(next.sink), [{ node: node ?? null }], 'what is in the store comes with this request')
    next.session.detach({ park: false })
  }
  t.same(published.filter((stream) => stream.startsWith('$rt:pull:')), [], 'no hand-over asked for')
})

t.test('a hand-over nobody answers ends with the hub: the request reads the store and goes on', async (t) => {
  const { hub: one, broker, store } = makeHub(t, { publicStreams: true })
  const two = new Hub({ broker, store, publicStreams: true })
  const sid = await pullSession(one)
  await parkedOn(one, store as MemorySessionStore, sid, 'gone')
  const asked = new Promise<void>((resolve) => broker.subscribe(pullStream('gone'), () => resolve()))
  const next = resume(two, sid)
  await asked
  two.close()
  t.same(whispered((await next).sink), [], 'answered without waiting out the hand-over')
})

t.test('stray hand-over messages on a process\'s pull stream are ignored', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  first.session.detach()
  await first.session.confirm()
  const answers: unknown[] = []
  broker.subscribe(pullStream('asker'), (message) => answers.push(message.data))
  const own = pullStream(hub.parked.node)
  await broker.publish(own, { type: 'flushed', sid, for: 7, kept: 0 }, { transient: true })
  await broker.publish(own, { type: 'taken', sid: 'unknown', lease: 9, by: 'asker' }, { transient: true })
  await broker.publish(own, { type: 'taken', sid, lease: 0, by: 'asker' }, { transient: true })
  await tick()
  t.same(answers, [], 'no answer for a session not parked here or for a request older than the one that parked it')
  await broker.publish(own, { type: 'taken', sid, lease: 9, by: 'asker' }, { transient: true })
  await until(() => answers.length === 1, 'the answer')
  t.same(answers, [{ type: 'flushed', sid, for: 9, kept: 0 }])
  const { errors, logger } = errorLog()
  const two = new Hub({ broker, store: hub.store, publicStreams: true, logger })
  t.teardown(() => two.close())
  const second = await pullSession(two)
  const parked = await resume(two, second)
  parked.session.detach()
  await parked.session.confirm()
  const publish = broker.publish.bind(broker)
  broker.publish = (stream, data, options) => stream === pullStream('asker') ? Promise.reject(new Error('down')) : publish(stream, data, options)
  await publish(pullStream(two.parked.node), { type: 'taken', sid: second, lease: 9, by: 'asker' }, { transient: true })
  await until(() => errors.length === 1, 'the failed answer')
  t.same(errors, ['@rt/core: handing kept transient messages over failed'])
})

t.test('a store that fails while a request takes kept messages over: logged, the request goes on', async (t) => {
  const { errors, logger } = errorLog()
  const { hub: one, broker, store } = makeHub(t, { publicStreams: true })
  const two = new Hub({ broker, store, publicStreams: true, logger })
  t.teardown(() => two.close())
  const sid = await pullSession(one)
  const first = await resume(one, sid)
  first.session.detach()
  await first.session.confirm()
  await broker.publish('room', { n: 1 }, whisper(1))
  await broker.publish('room', { marker: true })
  await one.parked.get(sid)!.flushed()
  store.get = () => Promise.reject(new Error('down'))
  const next = await resume(two, sid)
  t.same(errors, ['@rt/core: taking kept transient messages over failed'])
  t.same(whispered(next.sink), [{ n: 1 }, { marker: true }], 'what the claim read, and the catch-up')
  next.session.detach()
})

/** A broker that may still hand a listener a message in flight after it was removed (as a networked broker may). */
class LateBroker extends MemoryBroker {
  readonly removed: Array<{ stream: string; listener: StreamListener }> = []
  override subscribe(stream: string, listener: StreamListener): () => void {
    const stop = super.subscribe(stream, listener)
    return () => {
      stop()
      this.removed.push({ stream, listener })
    }
  }
}

t.test('a message that reaches a session after it stopped parking is not kept', async (t) => {
  const broker = new LateBroker()
  const { hub, store } = makeHub(t, { publicStreams: true, broker })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  first.session.detach()
  await first.session.confirm(60_000)
  hub.parked.sweep(Date.now() + 61_000)
  t.equal(hub.parked.size, 0)
  const late = broker.removed.filter(({ stream }) => stream === 'room').at(-1)!
  late.listener({ stream: 'room', offset: 0, epoch: '', timestamp: 1, data: { n: 1 }, meta: { transient: true, transient_id: 'late' } })
  await first.session.flushed()
  t.equal(await keptIds(store, sid), undefined)
})

t.test('while parked, the session\'s own whisper is not kept', async (t) => {
  const { hub, broker, store } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  first.session.detach()
  await first.session.confirm()
  await broker.publish('room', { own: true }, { meta: { transient: true, exclude_socket: sid, transient_id: 'own' } })
  await broker.publish('room', { n: 2 }, whisper(2))
  await first.session.flushed()
  t.same(await keptIds(store, sid), ['w2'])
  const next = await resume(hub, sid)
  t.same(whispered(next.sink), [{ n: 2 }])
  next.session.detach()
})

/** Records each `keep` call's ids. */
class BatchRecordingStore extends SlowKeepStore {
  readonly batches: string[][] = []
  override keep(sid: string, messages: readonly KeptMessage[], limit: number): Promise<number | undefined> {
    this.batches.push(messages.map((message) => message.id))
    return super.keep(sid, messages, limit)
  }
}

t.test('messages that arrive while a keep is on its way go to the store together, in one keep', async (t) => {
  const store = new BatchRecordingStore()
  const { hub, broker } = makeHub(t, { publicStreams: true, store })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  first.session.detach()
  await first.session.confirm()
  let open!: () => void
  store.hold = new Promise((resolve) => { open = resolve })
  await broker.publish('room', { n: 1 }, whisper(1))
  await broker.publish('room', { n: 2 }, whisper(2))
  await broker.publish('room', { n: 3 }, whisper(3))
  open()
  await first.session.flushed()
  t.same(store.batches, [['w1'], ['w2', 'w3']])
  const next = await resume(hub, sid)
  t.same(whispered(next.sink), [{ n: 1 }, { n: 2 }, { n: 3 }])
  next.session.detach()
})

/** A store whose `keep` rejects while `failing` is set. */
class FailingKeepStore extends MemorySessionStore {
  failing = false
  override keep(sid: string, messages: readonly KeptMessage[], limit: number): Promise<number | undefined> {
    return this.failing ? Promise.reject(new Error('down')) : super.keep(sid, messages, limit)
  }
}

t.test('a store whose keep rejects: logged, the session stays parked and keeps what comes once the store is back', async (t) => {
  const { errors, logger } = errorLog()
  const store = new FailingKeepStore()
  const { hub, broker } = makeHub(t, { publicStreams: true, store, logger })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  first.session.detach()
  await first.session.confirm()
  store.failing = true
  await broker.publish('room', { n: 1 }, whisper(1))
  await first.session.flushed()
  t.same(errors, ['@rt/core: keeping transient messages for a pull session failed'])
  t.equal(hub.parked.size, 1, 'still parked')
  store.failing = false
  await broker.publish('room', { n: 2 }, whisper(2))
  await first.session.flushed()
  const next = await resume(hub, sid)
  t.same(whispered(next.sink), [{ n: 2 }], 'what the store refused is lost; what followed is not')
  next.session.detach()
})

t.test('kept messages are delivered even when the catch-up of their stream fails', async (t) => {
  const { errors, logger } = errorLog()
  const { hub, broker, store } = makeHub(t, { publicStreams: true, logger })
  const sid = await pullSession(hub)
  await store.keep(sid, [keptOnRoom('k1', { n: 1 })], 100)
  broker.history = () => Promise.reject(new Error('down'))
  const next = await resume(hub, sid)
  t.same(errors, ['@rt/core: catching up room failed'])
  t.same(whispered(next.sink), [{ n: 1 }])
  next.session.detach()
})

t.test('in a request: the session\'s own whisper does not come back, and a transient message seen twice is sent once', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const other = await resume(hub, await pullSession(hub))
  const next = await resume(hub, sid)
  t.same(await next.session.handle({ command: 'whisper', identifier: room, data: 'hi' }), { ok: true })
  await tick()
  t.same(whispered(next.sink), [], 'not back to the sender')
  t.same(whispered(other.sink), ['hi'], 'to the others')
  const message = await broker.publish('room', { n: 1 }, whisper(1))
  // Delivered again under the same id (a second process kept it, a broker redelivered it).
  const joined = fanoutMembers(hub, 'room').find((member) => member.session === next.session)!
  next.session.receive(joined, { ...message })
  t.same(whispered(next.sink), [{ n: 1 }], 'once')
  next.session.detach()
  other.session.detach()
})

/** A sink with a size cap: it admits replies until `full`. */
class CappedSink extends RecordingSink {
  full = false
  admits(_replies: readonly Outgoing[]): boolean {
    return !this.full
  }
}

t.test('a transient message the sink has no room for is not sent, stays kept, and comes with the next request', async (t) => {
  const { hub, broker } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid, new CappedSink())
  await broker.publish('room', { n: 1 }, whisper(1))
  first.sink.full = true
  await broker.publish('room', { n: 2 }, whisper(2))
  t.same(whispered(first.sink), [{ n: 1 }], 'the second did not fit')
  first.session.detach({ park: false })
  await first.session.confirm()
  const next = await resume(hub, sid, new CappedSink())
  t.same(whispered(next.sink), [{ n: 2 }], 'the first was confirmed; the second comes now')
  next.session.detach()
})

t.test('a transient message without a safe transient_id is known by a digest of what every process receives', async (t) => {
  const message = (data: unknown, transientId?: string): StreamMessage =>
    ({ stream: 'room', offset: 0, epoch: 'e', timestamp: 5, data, meta: transientId === undefined ? { transient: true } : { transient: true, transient_id: transientId } })
  t.equal(transientId(message(1, 'w-1_A')), 'w-1_A', 'a safe id is used as it is')
  const digest = transientId(message(1, 'has a space'))
  t.match(digest, /^[\w-]{43}$/, 'otherwise a digest')
  t.equal(transientId(message(1, 'has a space')), digest, 'the same for the same message received elsewhere')
  t.not(transientId(message(2, 'has a space')), digest, 'another for other data')
  t.not(transientId(message(1)), transientId(message(2)), 'without an id as well')
  t.not(transientId(message(1, 'x'.repeat(65))), 'x'.repeat(65), 'too long to be used as it is')
  // Built by hand (an adapter, a broker that sets no meta on an offset-0 message).
  const bare = (): StreamMessage => ({ stream: 'room', offset: 0, epoch: 'e', timestamp: 5, data: 1 })
  t.match(transientId(bare()), /^[\w-]{43}$/, 'a message without meta gets a digest')
  t.equal(transientId(bare()), transientId(bare()), 'the same one each time')

  const { hub, broker } = makeHub(t, { publicStreams: true })
  const sid = await pullSession(hub)
  const first = await resume(hub, sid)
  await broker.publish('room', { n: 1 }, { meta: { transient: true, transient_id: 'not\nsafe' } })
  await cutThenConfirmed(t, hub, sid, first.session)
})

t.test('parked sessions: stopping one that a newer one for its sid replaced leaves the newer one parked', async (t) => {
  const { hub } = makeHub(t, { publicStreams: true })
  const park = () => hub.parked.park({ sid: 's', keeper: new TransientKeeper(hub, 's', 0), streams: ['room'], positions: { room: { offset: 0, epoch: 'e' } }, until: Date.now() + 60_000 })!
  const older = park()
  const newer = park()
  t.equal(hub.parked.get('s'), newer, 'the newer one replaced it')
  older.stop()
  t.equal(hub.parked.get('s'), newer)
  t.equal(hub.parked.size, 1)
  t.equal(hub.parked.streamCount, 1, 'room still listened to')
  newer.stop()
  t.equal(hub.parked.streamCount, 0)
})

t.test('a new pull session is stored by its first checkpoint, with a transient message its first answer carried: cut, it comes again', async (t) => {
  const { hub, broker, store } = makeHub(t, { publicStreams: true })
  const sink = new RecordingSink()
  const created = await hub.connect(request(), sink, { mode: 'pull' })
  if (!('session' in created)) throw new Error('rejected')
  const { session } = created
  await session.handle({ command: 'subscribe', identifier: room })
  t.equal(await store.get(session.sid), undefined, 'not stored before its first checkpoint')
  await broker.publish('room', { n: 1 }, whisper(1))
  t.same(whispered(sink), [{ n: 1 }], 'delivered')
  session.detach({ park: false })
  t.equal(await session.checkpoint(), true, 'stored')
  await session.flushed()
  const next = await resume(hub, session.sid)
  t.same(whispered(next.sink), [{ n: 1 }], 'the answer was not confirmed: sent again')
  next.session.detach({ park: false })
})
