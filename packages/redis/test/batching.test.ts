import t, { type Test } from 'tap'
import type { StreamMessage } from '@rt/core'
import { Redis } from 'ioredis'
import { RedisBroker } from '../src/index.js'
import { admin, cleanup, REDIS_URL, uniquePrefix, until } from './helpers.js'

// Publishes made in one task go to Redis as one script run per run of one stream: same offsets, order and epochs as one by one.
const redis = await admin(t)
const prefix = uniquePrefix('batching')
t.teardown(() => cleanup(redis, prefix))

/** A broker on its own client, counting the script calls (EVALSHA and the EVAL fallback) it sends. */
function counted(t: Test, publishBatch?: number): { broker: RedisBroker; calls: () => number } {
  const client = new Redis(REDIS_URL)
  t.teardown(() => client.disconnect())
  let calls = 0
  const evalsha = client.evalsha.bind(client)
  client.evalsha = ((...args: Parameters<typeof evalsha>) => {
    calls++
    return evalsha(...args)
  }) as typeof client.evalsha
  const broker = new RedisBroker({ client, keyPrefix: prefix, historyLimit: 1000, ...(publishBatch === undefined ? {} : { publishBatch }) })
  t.teardown(() => broker.close())
  return { broker, calls: () => calls }
}

function receiver(t: Test): RedisBroker {
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, historyLimit: 1000 })
  t.teardown(() => broker.close())
  return broker
}

t.test('concurrent publishes to one stream: one script run per batch, offsets in call order, delivered in order on another node', async (t) => {
  const { broker, calls } = counted(t, 100)
  const other = receiver(t)
  const received: StreamMessage[] = []
  other.subscribe('many', (m) => received.push(m))
  await other.position('many')
  await broker.position('many')
  const before = calls()
  const messages = await Promise.all(Array.from({ length: 250 }, (_, i) => broker.publish('many', i)))
  t.equal(calls() - before, 3, '250 publishes in batches of at most 100')
  t.same(messages.map((m) => m.offset), Array.from({ length: 250 }, (_, i) => i + 1))
  t.equal(new Set(messages.map((m) => m.epoch)).size, 1)
  t.ok(messages.every((m, i) => m.data === i && m.json === String(i)))
  await until(() => received.length === 250, 'every message on the other node')
  t.same(received.map((m) => [m.offset, m.data]), messages.map((m) => [m.offset, m.data]))
  const history = await other.history('many', { after: { offset: 0, epoch: messages[0]!.epoch } })
  t.same(history.messages.map((m) => m.data), messages.map((m) => m.data))
  t.equal(history.complete, true)
})

t.test('runs of one stream are batched; order across streams and with reads is the order of the calls', async (t) => {
  const { broker, calls } = counted(t)
  await broker.position('a')
  await broker.position('b')
  const before = calls()
  const pending = [broker.publish('a', 1), broker.publish('a', 2), broker.publish('b', 1), broker.publish('a', 3)]
  // A read made after the publishes in the same task is sent after them, and sees them.
  const position = broker.position('a')
  const [a1, a2, b1, a3] = await Promise.all(pending)
  t.same([a1!.offset, a2!.offset, b1!.offset, a3!.offset], [1, 2, 1, 3])
  t.equal((await position).offset, 3)
  t.equal(calls() - before, 4, 'a1+a2, b1, a3, then the read')
})

t.test('transient messages inside a batch: offset 0, not stored, delivered in place', async (t) => {
  const { broker } = counted(t)
  const other = receiver(t)
  const received: StreamMessage[] = []
  other.subscribe('mixed', (m) => received.push(m))
  await other.position('mixed')
  const messages = await Promise.all([
    broker.publish('mixed', 'kept'),
    broker.publish('mixed', 'gone', { transient: true }),
    broker.publish('mixed', 'kept too', { meta: { broadcast_type: 'x' } })
  ])
  t.same(messages.map((m) => m.offset), [1, 0, 2])
  t.same(messages[2]!.meta, { broadcast_type: 'x' })
  await until(() => received.length === 3, 'three live messages')
  t.same(received.map((m) => [m.offset, m.data]), [[1, 'kept'], [0, 'gone'], [2, 'kept too']])
  t.same(received[2]!.meta, { broadcast_type: 'x' })
  const history = await other.history('mixed', { since: 0 })
  t.same(history.messages.map((m) => [m.offset, m.data]), [[1, 'kept'], [2, 'kept too']])
})

t.test('a batch past the history limit keeps the newest and marks the rest evicted', async (t) => {
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, historyLimit: 3 })
  t.teardown(() => broker.close())
  const messages = await Promise.all(Array.from({ length: 5 }, (_, i) => broker.publish('short', i)))
  const epoch = messages[0]!.epoch
  const all = await broker.history('short', { after: { offset: 0, epoch } })
  t.same(all.messages.map((m) => m.offset), [3, 4, 5])
  t.equal(all.complete, false)
  t.equal((await broker.history('short', { after: { offset: 2, epoch } })).complete, true)
  const none = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, historyLimit: 0 })
  t.teardown(() => none.close())
  const kept = await Promise.all([none.publish('none', 1), none.publish('none', 2)])
  t.same(kept.map((m) => m.offset), [1, 2])
  const after = await none.history('none', { after: { offset: 0, epoch: kept[0]!.epoch } })
  t.same([after.messages.length, after.complete, after.lastOffset], [0, false, 2])
})

// The count trim hands the entry after the dropped ones to age retention as the history's head.
t.test('one publish past both limits: the count trim, then the age trim from the new head, both marked evicted', async (t) => {
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, historyLimit: 3, historyTtl: 0.2 })
  t.teardown(() => broker.close())
  const old = await Promise.all([1, 2, 3].map((n) => broker.publish('both', n)))
  const epoch = old[0]!.epoch
  await new Promise((resolve) => setTimeout(resolve, 400))
  const fresh = await broker.publish('both', 4)
  t.equal(fresh.offset, 4)
  const all = await broker.history('both', { after: { offset: 0, epoch } })
  t.same(all.messages.map((m) => m.data), [4], 'offset 1 went by count, 2 and 3 by age')
  t.same([all.complete, all.lastOffset], [false, 4])
  t.equal((await broker.history('both', { after: { offset: 2, epoch } })).complete, false, 'offset 3 was evicted too')
  t.equal((await broker.history('both', { after: { offset: 3, epoch } })).complete, true)
  // Within the limits again: nothing more is evicted.
  await broker.publish('both', 5)
  const kept = await broker.history('both', { after: { offset: 3, epoch } })
  t.same([kept.messages.map((m) => m.data), kept.complete], [[4, 5], true])
})

t.test('publishBatch 1: one script run per publish, the same offsets', async (t) => {
  const { broker, calls } = counted(t, 1)
  await broker.position('single')
  const before = calls()
  const messages = await Promise.all(Array.from({ length: 5 }, (_, i) => broker.publish('single', i)))
  t.equal(calls() - before, 5)
  t.same(messages.map((m) => m.offset), [1, 2, 3, 4, 5])
})
