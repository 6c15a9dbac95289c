import t, { type Test } from 'tap'
import type { StreamMessage } from '@rt/core'
import { brokerContract, sessionStoreContract } from '@rt/core/testing'
import { Cluster } from 'ioredis'
import { RedisBroker, RedisSessionStore, type RedisBrokerOptions } from '../src/index.js'
import { streamKeys } from '../src/keys.js'
import { startCluster } from './cluster.js'
import { recorder, sleep, uniquePrefix, until } from './helpers.js'
import { multiNodeSuite } from './multi-node.js'
import { emptyRestart } from './empty-restart.js'

// Everything that holds on one Redis server holds on a 3-master / 3-replica Redis Cluster.
const cluster = await startCluster(t)
const connection = { cluster: cluster.nodes }
let created = 0

function broker(t: Test, options: Partial<RedisBrokerOptions> = {}): RedisBroker {
  const made = new RedisBroker({ ...connection, keyPrefix: uniquePrefix('cluster'), logger: recorder().logger, ...options } as RedisBrokerOptions)
  t.teardown(() => made.close())
  return made
}

t.test('broker contract', async (t) => {
  const prefix = uniquePrefix('cluster-contract')
  brokerContract(t, {
    create: async ({ historyLimit, historyTtl }) =>
      new RedisBroker({ ...connection, keyPrefix: `${prefix}${created++}:`, historyLimit, historyTtl, logger: recorder().logger }),
    elapse: (ms) => sleep(ms)
  })
})

t.test('session store contract', async (t) => {
  const prefix = uniquePrefix('cluster-sessions')
  sessionStoreContract(t, {
    create: async () => new RedisSessionStore({ ...connection, keyPrefix: `${prefix}${created++}:`, logger: recorder().logger }),
    elapse: (ms) => sleep(ms)
  })
})

t.test('multi-node', async (t) => {
  multiNodeSuite(t, { connection, prefix: uniquePrefix('cluster-nodes') })
})

for (const pubsub of ['sharded', 'classic'] as const) t.test(`streams on every master (${pubsub} pub/sub): each Lua call keeps its keys in one slot, delivery and history work on all`, async (t) => {
  const a = broker(t, { historyLimit: 10, pubsub })
  const b = broker(t, { keyPrefix: a.keyPrefix, pubsub })
  const client = cluster.node(cluster.servers[0]!.port)
  // Find stream names whose slots are served by three different masters.
  const byMaster = new Map<number, string>()
  for (let i = 0; byMaster.size < 3 && i < 1000; i++) {
    const stream = `slot-${i}`
    const master = await cluster.masterOf(streamKeys(a.keyPrefix, stream).meta)
    if (!byMaster.has(master)) byMaster.set(master, stream)
  }
  const streams = [...byMaster.values()]
  t.equal(streams.length, 3, 'three streams on three masters')
  const slots = new Set<number>()
  for (const stream of streams) {
    const keys = streamKeys(a.keyPrefix, stream)
    const own = new Set(await Promise.all([keys.meta, keys.history, keys.channel].map(async (key) => Number(await client.cluster('KEYSLOT', key)))))
    t.equal(own.size, 1, `${stream}: meta, history and channel share one slot`)
    slots.add([...own][0]!)
  }
  t.equal(slots.size, 3)

  const received = new Map<string, number[]>(streams.map((stream) => [stream, []]))
  for (const stream of streams) b.subscribe(stream, (m) => received.get(stream)!.push(m.data as number))
  await Promise.all(streams.map((stream) => b.position(stream)))
  await sleep(50)
  for (let n = 1; n <= 20; n++) await Promise.all(streams.map((stream) => a.publish(stream, n)))
  await until(() => [...received.values()].every((list) => list.length === 20), 'delivery of every stream')
  for (const stream of streams) {
    t.same(received.get(stream), Array.from({ length: 20 }, (_, i) => i + 1), `${stream}: in order on the other node`)
    const history = await b.history(stream, { after: { offset: 12, epoch: (await b.position(stream)).epoch } })
    t.same(history.messages.map((m) => m.data), [13, 14, 15, 16, 17, 18, 19, 20])
    t.equal(history.complete, true)
    t.equal((await b.history(stream, { after: { offset: 5, epoch: history.epoch } })).complete, false, 'retention seen on the shard')
  }
})

t.test('a Cluster passed in as client works and is left open (sharded subscribers duplicated from it)', async (t) => {
  const client = new Cluster(cluster.nodes)
  t.teardown(() => client.disconnect())
  const shared = new RedisBroker({ client, keyPrefix: uniquePrefix('given'), logger: recorder().logger })
  t.teardown(() => shared.close())
  const live: StreamMessage[] = []
  shared.subscribe('given', (m) => live.push(m))
  await shared.position('given')
  await shared.publish('given', 'x')
  await until(() => live.length === 1, 'delivery')
  await shared.close()
  t.equal(await client.ping(), 'PONG')
})

// Last: it takes one master down. Its replica is told not to take over, so the master comes back, empty, with its slots.
t.test('a cluster master that restarts empty', async (t) => {
  const prefix = uniquePrefix('cluster-restart')
  const stream = 'restarted'
  const master = await cluster.masterOf(streamKeys(prefix, stream).meta)
  for (const { port } of cluster.servers) await cluster.node(port).config('SET', 'cluster-replica-no-failover', 'yes')
  await emptyRestart(t, connection, prefix, stream, async () => {
    await cluster.kill(master)
    await cluster.restart(master)
    await cluster.healthy('the restarted master to serve its slots')
  })
  t.equal(await cluster.masterOf(streamKeys(prefix, stream).meta), master, 'the same node serves the stream, with no data')
})
