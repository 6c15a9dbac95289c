import type { Test } from 'tap'
import type { Broker, StreamMessage } from '../broker.js'

/** What the contract needs to build a broker under test. */
export interface BrokerContractSetup {
  /** A fresh broker with the given retention; streams must be empty (use a unique namespace). */
  create(options: { historyLimit: number; historyTtl: number }): Promise<Broker>
  /** Moves the broker's clock (or waits) by `ms` so age-based retention can be observed. */
  elapse(ms: number): Promise<void>
}

function collect(broker: Broker, stream: string): { messages: StreamMessage[]; stop: () => void } {
  const messages: StreamMessage[] = []
  const stop = broker.subscribe(stream, (message) => messages.push(message))
  return { messages, stop }
}

async function until(check: () => boolean, what: string): Promise<void> {
  /* c8 ignore next -- the bound is only reached when an implementation breaks the contract */
  for (let i = 0; i < 400 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  /* c8 ignore next -- only reached when an implementation breaks the contract */
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}

/**
 * The behaviour every `Broker` implementation must have. Run it from each
 * implementation's tests: `brokerContract(t, setup)`.
 */
export function brokerContract(t: Test, setup: BrokerContractSetup): void {
  const make = async (t: Test, historyLimit = 100, historyTtl = 300): Promise<Broker> => {
    const broker = await setup.create({ historyLimit, historyTtl })
    t.teardown(() => broker.close())
    return broker
  }

  t.test('offsets start at 1 and grow by one; the epoch is stable', async (t) => {
    const broker = await make(t)
    const first = await broker.publish('s', { n: 1 })
    const second = await broker.publish('s', 'two')
    t.equal(first.offset, 1)
    t.equal(second.offset, 2)
    t.equal(first.epoch, second.epoch)
    t.ok(first.epoch.length > 0)
    t.same(second.data, 'two')
    t.equal(first.stream, 's')
    t.ok(second.timestamp >= first.timestamp)
    t.same(await broker.position('s'), { offset: 2, epoch: first.epoch })
    const other = await broker.publish('other', 1)
    t.equal(other.offset, 1, 'offsets are per stream')
  })

  t.test("a message's JSON text is encoded once, when accepted, and read back as is live and from history", async (t) => {
    const broker = await make(t)
    const live = collect(broker, 'j')
    const messages = [
      await broker.publish('j', { a: [1, 'two'], b: null }),
      await broker.publish('j', undefined),
      await broker.publish('j', 'with meta', { meta: { broadcast_type: 'note', exclude_socket: 'x"y' } }),
      await broker.publish('j', { as: 'received' }, { json: '{"as": "received"}' })
    ]
    t.same(messages.map((m) => m.json), ['{"a":[1,"two"],"b":null}', 'null', '"with meta"', '{"as": "received"}'])
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    await t.rejects(broker.publish('j', cyclic), /cannot be encoded as JSON/, 'what JSON cannot encode is refused')
    t.equal((await broker.position('j')).offset, 4, 'and takes no offset')
    await until(() => live.messages.length === 4, 'live delivery')
    t.same(live.messages.map((m) => m.json), messages.map((m) => m.json), 'live readers get the stored text')
    const history = await broker.history('j', { since: 0 })
    t.same(history.messages.map((m) => m.json), messages.map((m) => m.json), 'so do history readers')
    t.same(history.messages[2]!.meta, { broadcast_type: 'note', exclude_socket: 'x"y' })
    live.stop()
  })

  t.test('concurrent publishes get distinct offsets and are delivered in offset order', async (t) => {
    const broker = await make(t, 1000)
    const live = collect(broker, 'c')
    const published = await Promise.all(Array.from({ length: 200 }, (_, i) => broker.publish('c', i)))
    t.same(published.map((m) => m.offset).sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1))
    await until(() => live.messages.length === 200, 'live delivery')
    t.same(live.messages.map((m) => m.offset), Array.from({ length: 200 }, (_, i) => i + 1))
    live.stop()
  })

  t.test('subscribe delivers only later messages; unsubscribe stops delivery', async (t) => {
    const broker = await make(t)
    await broker.publish('u', 'before')
    const a = collect(broker, 'u')
    const b = collect(broker, 'u')
    await broker.publish('u', 'after')
    await until(() => a.messages.length === 1 && b.messages.length === 1, 'both listeners')
    a.stop()
    await broker.publish('u', 'last')
    await until(() => b.messages.length === 2, 'remaining listener')
    t.same(a.messages.map((m) => m.data), ['after'])
    t.same(b.messages.map((m) => m.data), ['after', 'last'])
    b.stop()
    b.stop()
  })

  t.test('history after a position', async (t) => {
    const broker = await make(t)
    const messages = []
    for (let i = 1; i <= 5; i++) messages.push(await broker.publish('h', i))
    const epoch = messages[0]!.epoch
    const result = await broker.history('h', { after: { offset: 2, epoch } })
    t.same(result.messages.map((m) => m.data), [3, 4, 5])
    t.equal(result.complete, true)
    t.equal(result.epoch, epoch)
    t.equal(result.lastOffset, 5)
    const limited = await broker.history('h', { after: { offset: 0, epoch }, limit: 2 })
    t.same(limited.messages.map((m) => m.offset), [1, 2])
    const atEnd = await broker.history('h', { after: { offset: 5, epoch } })
    t.same(atEnd.messages, [])
    t.equal(atEnd.complete, true, 'a position at the head is complete and empty')
    const beyond = await broker.history('h', { after: { offset: 6, epoch } })
    t.equal(beyond.complete, false, 'a position past the head is not in this history')
    const otherEpoch = await broker.history('h', { after: { offset: 2, epoch: 'other' } })
    t.equal(otherEpoch.complete, false, 'another epoch is not resolvable')
    t.same(otherEpoch.messages, [])
  })

  t.test('history of an unknown stream', async (t) => {
    const broker = await make(t)
    const bySince = await broker.history('nothing', { since: 0 })
    t.same(bySince.messages, [])
    t.equal(bySince.complete, true)
    const byPosition = await broker.history('nothing', { after: { offset: 3, epoch: 'gone' } })
    t.equal(byPosition.complete, false)
  })

  t.test('history by time', async (t) => {
    const broker = await make(t)
    await broker.publish('t', 'old')
    await setup.elapse(20)
    const cut = (await broker.publish('t', 'new')).timestamp
    await broker.publish('t', 'newer')
    const result = await broker.history('t', { since: cut })
    t.same(result.messages.map((m) => m.data), ['new', 'newer'])
    t.equal(result.complete, true)
    const limited = await broker.history('t', { since: 0, limit: 1 })
    t.same(limited.messages.map((m) => m.data), ['old'])
  })

  t.test('retention by count makes older positions incomplete', async (t) => {
    const broker = await make(t, 3)
    let epoch = ''
    for (let i = 1; i <= 5; i++) epoch = (await broker.publish('r', i)).epoch
    const all = await broker.history('r', { since: 0 })
    t.same(all.messages.map((m) => m.offset), [3, 4, 5])
    const old = await broker.history('r', { after: { offset: 1, epoch } })
    t.equal(old.complete, false, 'offset 2 was evicted')
    t.same(old.messages.map((m) => m.offset), [3, 4, 5], 'what is retained is still returned')
    const edge = await broker.history('r', { after: { offset: 2, epoch } })
    t.equal(edge.complete, true, 'nothing after offset 2 is missing')
  })

  t.test('retention by age', async (t) => {
    const broker = await make(t, 100, 1)
    const first = await broker.publish('a', 'expires')
    await setup.elapse(1500)
    await broker.publish('a', 'fresh')
    const result = await broker.history('a', { since: 0 })
    t.same(result.messages.map((m) => m.data), ['fresh'])
    const old = await broker.history('a', { after: { offset: 0, epoch: first.epoch } })
    t.equal(old.complete, false)
  })

  t.test('per-stream retention: a policy keeps its own count and age for the streams it selects', async (t) => {
    const broker = await make(t, 3, 1)
    t.ok(broker.setRetention, 'the broker supports per-stream retention')
    const isCategory = (stream: string): boolean => stream.startsWith('cat:')
    const stop = broker.setRetention!(isCategory, { historyLimit: 5, historyTtl: Infinity })
    const kept = broker.setRetention!((stream) => stream === 'cat:small', { historyLimit: 2, historyTtl: Infinity })
    for (let i = 1; i <= 7; i++) {
      await broker.publish('cat:a', i)
      await broker.publish('cat:small', i)
      await broker.publish('plain', i)
    }
    await setup.elapse(1500)
    t.same((await broker.history('cat:a', { since: 0 })).messages.map((m) => m.data), [3, 4, 5, 6, 7], 'count of the policy, no expiry')
    t.same((await broker.history('cat:small', { since: 0 })).messages.map((m) => m.data), [6, 7], 'the policy added last wins')
    t.same((await broker.history('plain', { since: 0 })).messages.map((m) => m.data), [], 'other streams keep the broker\'s age limit')
    const old = await broker.history('cat:a', { after: { offset: 1, epoch: (await broker.position('cat:a')).epoch } })
    t.equal(old.complete, false, 'evicted by the policy: older positions are incomplete')
    kept()
    stop()
    for (let i = 8; i <= 9; i++) await broker.publish('cat:a', i)
    t.same((await broker.history('cat:a', { since: 0 })).messages.map((m) => m.data), [8, 9], 'removed: the default count and age apply again')
    t.throws(() => broker.setRetention!(isCategory, { historyLimit: -1, historyTtl: 1 }), { name: 'TypeError', message: /historyLimit/ })
    t.throws(() => broker.setRetention!(isCategory, { historyLimit: 1, historyTtl: 0 }), { name: 'TypeError', message: /historyTtl/ })
    t.throws(() => broker.setRetention!('x' as never, { historyLimit: 1, historyTtl: 1 }), { name: 'TypeError', message: /function/ })
    t.throws(() => broker.setRetention!(isCategory, null as never), { name: 'TypeError', message: /historyLimit/ })
  })

  t.test('transient messages are delivered live but not kept', async (t) => {
    const broker = await make(t)
    const live = collect(broker, 'x')
    await broker.publish('x', 'kept')
    const transient = await broker.publish('x', 'gone', { transient: true })
    const viaMeta = await broker.publish('x', 'gone too', { meta: { transient: true, exclude_socket: 'abc' } })
    await broker.publish('x', 'kept too')
    t.equal(transient.offset, 0)
    t.equal(viaMeta.meta?.exclude_socket, 'abc')
    await until(() => live.messages.length === 4, 'live delivery')
    t.same(live.messages.map((m) => m.data), ['kept', 'gone', 'gone too', 'kept too'])
    const history = await broker.history('x', { since: 0 })
    t.same(history.messages.map((m) => [m.offset, m.data]), [[1, 'kept'], [2, 'kept too']])
    live.stop()
  })

  t.test('remove drops the named offsets without making positions incomplete', async (t) => {
    const broker = await make(t)
    let epoch = ''
    for (let i = 1; i <= 4; i++) epoch = (await broker.publish('d', i)).epoch
    await broker.remove('d', [2, 3])
    await broker.remove('d', [])
    await broker.remove('unknown', [1])
    const result = await broker.history('d', { after: { offset: 0, epoch } })
    t.same(result.messages.map((m) => m.offset), [1, 4])
    t.equal(result.complete, true)
  })

  t.test('a closed broker refuses calls', async (t) => {
    const broker = await setup.create({ historyLimit: 10, historyTtl: 10 })
    await broker.close()
    await broker.close()
    await t.rejects(broker.publish('z', 1), { name: 'BrokerUnavailableError' })
  })
}
