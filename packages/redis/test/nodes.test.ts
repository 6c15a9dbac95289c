import t, { type Test } from 'tap'
import type { StreamMessage } from '@rt/core'
import { RedisBroker } from '../src/index.js'
import { admin, cleanup, eventually, REDIS_URL, recorder, uniquePrefix, until } from './helpers.js'

// Several brokers on one Redis behave as several nodes of one server.
const redis = await admin(t)
const prefix = uniquePrefix('nodes')
t.teardown(() => cleanup(redis, prefix))

let nodes = 0
function node(t: Test, connectionName = `rt-test-node-${process.pid}-${nodes++}`): RedisBroker {
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger, historyLimit: 2000, connectionName })
  t.teardown(() => broker.close())
  return broker
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

t.test('publish on A is delivered live on B, in order, none lost or repeated (1000 messages)', async (t) => {
  const a = node(t)
  const b = node(t)
  const received: StreamMessage[] = []
  b.subscribe('thousand', (message) => received.push(message))
  // B's start position is read before anything B sends later: once this answers, B listens from here on.
  await b.position('thousand')
  for (let i = 1; i <= 1000; i++) await a.publish('thousand', { i })
  await until(() => received.length >= 1000, '1000 messages on B')
  t.same(received.map((m) => m.offset), range(1, 1000))
  t.same(received.map((m) => (m.data as { i: number }).i), range(1, 1000))
  t.equal(new Set(received.map((m) => m.epoch)).size, 1)
  t.equal(received[0]!.stream, 'thousand')
})

t.test('concurrent publishes from two nodes: distinct offsets, one order seen by every node', async (t) => {
  const a = node(t)
  const b = node(t)
  const c = node(t)
  const onA: number[] = []
  const onC: number[] = []
  a.subscribe('race', (m) => onA.push(m.offset))
  c.subscribe('race', (m) => onC.push(m.offset))
  await Promise.all([a.position('race'), c.position('race')])
  const published = await Promise.all([
    ...range(1, 300).map((i) => a.publish('race', `a${i}`)),
    ...range(1, 300).map((i) => b.publish('race', `b${i}`))
  ])
  t.same(published.map((m) => m.offset).sort((x, y) => x - y), range(1, 600), 'every offset assigned once')
  await until(() => onA.length >= 600 && onC.length >= 600, 'delivery on A and C')
  t.same(onA, range(1, 600))
  t.same(onC, range(1, 600))
  const history = await c.history('race', { since: 0 })
  const byOffset = new Map(published.map((m) => [m.offset, m.data]))
  t.same(history.messages.map((m) => m.data), range(1, 600).map((offset) => byOffset.get(offset)), 'history holds the same order')
  const fromA = history.messages.filter((m) => String(m.data).startsWith('a')).map((m) => m.data)
  t.same(fromA, range(1, 300).map((i) => `a${i}`), "one node's publishes keep their order")
})

t.test('a node listens on one connection with one SUBSCRIBE per stream, however many listeners', async (t) => {
  const name = `rt-test-conns-${process.pid}`
  const a = node(t, name)
  const stops = []
  for (let i = 0; i < 20; i++) stops.push(a.subscribe(`many-${i % 5}`, () => undefined))
  await Promise.all(range(0, 4).map((i) => a.position(`many-${i}`)))
  t.equal(a.liveStreams, 5)
  const channels = async (): Promise<string[]> => await redis.pubsub('CHANNELS', `${prefix}{many-*`) as string[]
  await eventually(async () => (await channels()).length === 5, 'one channel per stream')
  const list = (await redis.client('LIST') as string).split('\n').filter((line) => line.includes(` name=${name}`))
  t.equal(list.length, 2, 'the command connection and one subscriber connection')
  for (const stop of stops) stop()
  t.equal(a.liveStreams, 0, 'the last listener leaving ends the subscription')
  await eventually(async () => (await channels()).length === 0, 'unsubscribed from Redis')
})

t.test('subscriptions made while the subscriber connection is being set up all take effect', async (t) => {
  for (let i = 0; i < 20; i++) {
    const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger })
    broker.subscribe(`early-${i}`, () => undefined)
    await new Promise((resolve) => setTimeout(resolve, i % 5))
    broker.subscribe(`later-${i}`, () => undefined)
    const channels = [`${prefix}{early-${i}}:p`, `${prefix}{later-${i}}:p`]
    await eventually(async () => {
      const counts = await redis.pubsub('NUMSUB', ...channels) as [string, number, string, number]
      return counts[1] === 1 && counts[3] === 1
    }, `both subscriptions of round ${i}`)
    await broker.close()
  }
  t.pass('every round subscribed both streams')
})
