import t from 'tap'
import { MemoryBroker, newEpoch } from '../src/memory-broker.js'
import { brokerContract } from '../src/testing/broker-contract.js'

let clock = 1_700_000_000_000
brokerContract(t, {
  create: async (options) => new MemoryBroker({ ...options, now: () => clock }),
  elapse: async (ms) => {
    clock += ms
  }
})

t.test('a stream nobody reads whose history expired costs no memory', async (t) => {
  let now = 0
  const broker = new MemoryBroker({ historyTtl: 1, now: () => now })
  t.teardown(() => broker.close())
  for (let i = 0; i < 1000; i++) await broker.publish(`s${i}`, i)
  t.equal(broker.streamCount, 1000)
  const stop = broker.subscribe('s0', () => {})
  now += 2000
  broker.sweep()
  t.equal(broker.streamCount, 1, 'only the stream with a listener remains')
  stop()
  t.equal(broker.streamCount, 0)
})

t.test('a dropped stream comes back in a new epoch', async (t) => {
  let now = 0
  const broker = new MemoryBroker({ historyTtl: 1, now: () => now })
  t.teardown(() => broker.close())
  const before = await broker.publish('s', 1)
  now += 5000
  broker.sweep()
  const after = await broker.publish('s', 2)
  t.equal(after.offset, 1)
  t.not(after.epoch, before.epoch)
})

t.test('transient publish to a stream with no listener leaves nothing behind', async (t) => {
  const broker = new MemoryBroker()
  t.teardown(() => broker.close())
  await broker.publish('t', 1, { transient: true })
  t.equal(broker.streamCount, 0)
})

t.test('historyLimit 0 keeps no history', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 0 })
  t.teardown(() => broker.close())
  const live: unknown[] = []
  const stop = broker.subscribe('s', (m) => live.push(m.data))
  const message = await broker.publish('s', 1)
  t.equal(message.offset, 1)
  t.same(live, [1])
  const history = await broker.history('s', { after: { offset: 0, epoch: message.epoch } })
  t.equal(history.complete, false)
  stop()
})

t.test('a stream that keeps no history and has no reader is not kept', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 0 })
  t.teardown(() => broker.close())
  const message = await broker.publish('s', 1)
  t.equal(message.offset, 1)
  t.equal(broker.streamCount, 0)
})

t.test('restore loads saved streams, trimmed to the limit', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 2 })
  t.teardown(() => broker.close())
  const messages = [1, 2, 3].map((offset) => ({ stream: 's', offset, epoch: 'E', timestamp: Date.now(), data: offset }))
  broker.restore([{ stream: 's', epoch: 'E', lastOffset: 3, messages }])
  t.same(await broker.position('s'), { offset: 3, epoch: 'E' })
  const history = await broker.history('s', { after: { offset: 1, epoch: 'E' } })
  t.same(history.messages.map((m) => m.offset), [2, 3])
  t.equal(history.complete, true)
  t.equal((await broker.history('s', { after: { offset: 0, epoch: 'E' } })).complete, false)
  const next = await broker.publish('s', 4)
  t.same([next.offset, next.epoch], [4, 'E'])
  const none = new MemoryBroker({ historyLimit: 0 })
  t.teardown(() => none.close())
  none.restore([{ stream: 's', epoch: 'E', lastOffset: 3, messages }])
  t.equal(none.streamCount, 0, 'a restored stream with nothing retained costs nothing')
})

t.test('options are validated', async (t) => {
  t.throws(() => new MemoryBroker({ historyLimit: -1 }), /historyLimit/)
  t.throws(() => new MemoryBroker({ historyTtl: 0 }), /historyTtl/)
  const forever = new MemoryBroker({ historyTtl: Infinity })
  await forever.close()
})

t.test('the sweep timer runs on its own', async (t) => {
  let now = 0
  const broker = new MemoryBroker({ historyTtl: 1, sweepInterval: 5, now: () => now })
  t.teardown(() => broker.close())
  await broker.publish('s', 1)
  now += 2000
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.equal(broker.streamCount, 0)
})

t.test('onAppend and onDrop hooks see what history keeps and drops', async (t) => {
  const appended: number[] = []
  const dropped: string[] = []
  let now = 0
  const broker = new MemoryBroker({ historyTtl: 1, now: () => now, onAppend: (m) => appended.push(m.offset), onDrop: (s) => dropped.push(s) })
  t.teardown(() => broker.close())
  await broker.publish('s', 1)
  await broker.publish('s', 2, { transient: true })
  now += 2000
  broker.sweep()
  t.same(appended, [1])
  t.same(dropped, ['s'])
})

t.test('pooled epochs are distinct and 8 URL-safe characters, across pool refills', async (t) => {
  const epochs = new Set(Array.from({ length: 1000 }, () => newEpoch()))
  t.equal(epochs.size, 1000)
  t.ok([...epochs].every((epoch) => /^[A-Za-z0-9_-]{8}$/.test(epoch)))
})
