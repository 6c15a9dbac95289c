import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { BrokerUnavailableError, type StreamMessage } from '@rt/core'
import { Redis } from 'ioredis'
import { RedisBroker, RedisSessionStore } from '../src/index.js'
import { admin, cleanup, clientId, eventually, REDIS_URL, recorder, uniquePrefix, until } from './helpers.js'

const redis = await admin(t)
const prefix = uniquePrefix('outage')
t.teardown(() => cleanup(redis, prefix))
const CLOSED_PORT = 'redis://127.0.0.1:1'

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

t.test('a broker whose Redis is unreachable rejects every call with BrokerUnavailableError', async (t) => {
  const { logger, warnings } = recorder()
  const broker = new RedisBroker({ url: CLOSED_PORT, keyPrefix: prefix, logger })
  t.teardown(() => broker.close())
  const error = await broker.publish('s', 1).then(() => undefined, (error: unknown) => error)
  t.type(error, BrokerUnavailableError)
  t.match((error as Error).message, /^@rt\/redis: publish failed: Redis is unreachable/)
  t.match((error as Error).cause, { code: 'ECONNREFUSED' }, 'the cause is kept')
  await t.rejects(broker.publish('s', 2), BrokerUnavailableError, 'also once the first attempt failed')
  await t.rejects(broker.history('s', { since: 0 }), BrokerUnavailableError)
  await t.rejects(broker.position('s'), BrokerUnavailableError)
  await t.rejects(broker.remove('s', [1]), BrokerUnavailableError)
  t.equal(warnings.filter((w) => w.includes('command connection to Redis failed')).length, 1, 'logged once, not once per retry')

  const stop = broker.subscribe('s', () => undefined)
  await until(() => warnings.some((w) => w.includes('catching up stream s failed; retrying')), 'the subscription to report its failure')
  stop()

  const sessions = new RedisSessionStore({ url: CLOSED_PORT, keyPrefix: prefix, logger })
  t.teardown(() => sessions.close())
  await t.rejects(sessions.get('x'), BrokerUnavailableError)
  await t.rejects(sessions.claim('x', 1000), BrokerUnavailableError)
})

t.test('after client.disconnect() a publish rejects; once ioredis reconnects it succeeds again', async (t) => {
  const client = new Redis(REDIS_URL, { retryStrategy: () => 200 })
  t.teardown(() => client.disconnect())
  const { logger, warnings, infos } = recorder()
  const broker = new RedisBroker({ client, keyPrefix: prefix, logger })
  t.teardown(() => broker.close())
  t.equal((await broker.publish('reconnect', 1)).offset, 1, 'waits for the first connection')
  client.disconnect(true)
  await until(() => client.status === 'reconnecting', 'the connection to drop')
  await t.rejects(broker.publish('reconnect', 2), { name: 'BrokerUnavailableError', message: /Redis is unreachable \(connection \w+\); nothing was sent/ })
  await until(() => client.status === 'ready', 'ioredis to reconnect')
  t.equal((await broker.publish('reconnect', 3)).offset, 2, 'the failed publish took no offset')
  t.ok(warnings.some((w) => w.includes('command connection to Redis lost')))
  t.ok(infos.some((i) => i.includes('command connection to Redis restored')))

  client.disconnect()
  await t.rejects(broker.publish('reconnect', 4), BrokerUnavailableError)
  await broker.close()
  await broker.close()
  t.equal(client.status, 'end', 'the broker did not touch a client it was given, beyond its listeners')
  t.equal(client.listenerCount('ready'), 0)
})

/**
 * A TCP proxy to the shared Redis that can hold what the client sends: a command written while it holds is in
 * flight (sent, unanswered) for as long as the test wants, whatever the load; `cut()` then drops the connections.
 */
async function holdingProxy(t: Test): Promise<{ url: string; hold(): void; held(): number; cut(): void }> {
  const target = new URL(REDIS_URL)
  const pairs = new Set<[Socket, Socket]>()
  let holding = false
  let heldBytes = 0
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname)
    const pair: [Socket, Socket] = [client, upstream]
    pairs.add(pair)
    client.on('data', (chunk) => {
      if (holding) heldBytes += chunk.length
      else upstream.write(chunk)
    })
    upstream.pipe(client)
    const drop = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', drop).on('error', drop)
    upstream.on('close', drop).on('error', drop)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => {
    for (const [client] of pairs) client.destroy()
    server.close(resolve)
  }))
  const { port } = server.address() as AddressInfo
  return {
    url: `redis://127.0.0.1:${port}`,
    hold: () => { holding = true },
    held: () => heldBytes,
    cut: () => {
      holding = false
      for (const [client] of pairs) client.destroy()
    }
  }
}

t.test('a publish in flight when the connection dies fails to its caller; none hangs, none is applied', async (t) => {
  const proxy = await holdingProxy(t)
  const broker = new RedisBroker({ url: proxy.url, keyPrefix: prefix, logger: recorder().logger })
  t.teardown(() => broker.close())
  t.equal((await broker.position('inflight')).offset, 0)
  proxy.hold()
  const pending = Promise.allSettled(range(1, 200).map((i) => broker.publish('inflight', i)))
  // The batches are written to the connection at the end of this task and reach the proxy, which keeps them.
  await until(() => proxy.held() > 0, 'the publishes to be sent')
  proxy.cut()
  const results = await pending
  t.same(results.map((result) => result.status), range(1, 200).map(() => 'rejected'), 'every publish in flight fails to its caller')
  for (const result of results) {
    if (result.status === 'rejected') t.type(result.reason, BrokerUnavailableError)
  }
  const reader = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger })
  t.teardown(() => reader.close())
  t.equal((await reader.position('inflight')).offset, 0, 'none of them reached Redis')
  await eventually(() => broker.publish('inflight', 'after').then(() => true, () => false), 'the broker to reconnect')
  t.equal((await reader.position('inflight')).offset, 1, 'the broker publishes again once reconnected, from the next offset')
})

t.test('CLIENT KILL of the subscriber connection mid-stream: live listeners lose and repeat nothing', async (t) => {
  const name = `rt-test-kill-${process.pid}`
  const { logger, warnings, infos } = recorder()
  const publisher = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger, historyLimit: 1000 })
  const listener = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, connectionName: name, logger, historyLimit: 1000 })
  t.teardown(() => Promise.all([publisher.close(), listener.close()]))
  const received: StreamMessage[] = []
  const other: number[] = []
  listener.subscribe('killed', (m) => received.push(m))
  listener.subscribe('quiet', (m) => other.push(m.offset))
  await listener.position('killed')
  let kills = 0
  for (let i = 1; i <= 600; i++) {
    await publisher.publish('killed', i)
    if (i === 200 || i === 400) {
      await eventually(async () => (await clientId(redis, `${name}:subscriber`)) !== undefined, 'the subscriber connection')
      await redis.client('KILL', 'ID', (await clientId(redis, `${name}:subscriber`))!)
      kills++
    }
  }
  t.equal(kills, 2)
  // A stream with no traffic during the outage catches up too: published after the kill, before anything else.
  await publisher.publish('quiet', 'q')
  await until(() => received.length >= 600 && other.length === 1, 'every message on the listener')
  t.same(received.map((m) => m.offset), range(1, 600), 'in order, none lost, none repeated')
  t.same(received.map((m) => m.data), range(1, 600))
  t.ok(warnings.some((w) => w.includes('subscriber connection to Redis lost')), 'the loss was logged')
  await until(() => infos.some((i) => i.includes('subscriber connection to Redis restored')), 'the recovery to be logged')
})

t.test('a subscription made while Redis is unreachable starts when it is back', async (t) => {
  const client = new Redis(REDIS_URL, { lazyConnect: true })
  t.teardown(() => client.disconnect())
  const { logger, warnings } = recorder()
  const broker = new RedisBroker({ client, keyPrefix: prefix, logger })
  const publisher = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger })
  t.teardown(() => Promise.all([broker.close(), publisher.close()]))
  client.disconnect()
  const received: unknown[] = []
  broker.subscribe('later', (m) => received.push(m.data))
  await until(() => warnings.some((w) => w.includes('catching up stream later failed')), 'the first failure')
  await client.connect()
  // Once the retry has read the start position, what is published after it is delivered.
  await until(() => broker.liveStreams === 1, 'the subscription')
  await eventually(async () => {
    await publisher.publish('later', 'ping')
    return received.length > 0
  }, 'the retried subscription to deliver')
  t.same([...new Set(received)], ['ping'])
})

t.test('a stream subscribed to while the subscriber connection is down is set up once it is back', async (t) => {
  const name = `rt-test-down-${process.pid}`
  const { logger, warnings, infos } = recorder()
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, connectionName: name, logger })
  t.teardown(() => broker.close())
  const before: unknown[] = []
  broker.subscribe('up', (m) => before.push(m.data))
  await broker.publish('up', 'first')
  await until(() => before.length === 1, 'the first subscription')
  await redis.client('KILL', 'ID', (await clientId(redis, `${name}:subscriber`))!)
  await until(() => warnings.some((w) => w.includes('subscriber connection to Redis lost')), 'the loss')
  const during: unknown[] = []
  broker.subscribe('down', (m) => during.push(m.data))
  const published = broker.publish('down', 'not held up by the missing subscriber')
  await until(() => infos.some((i) => i.includes('subscriber connection to Redis restored')), 'the reconnection')
  await published
  await broker.publish('down', 'after')
  await broker.publish('up', 'second')
  await until(() => during.length === 2 && before.length === 2, 'delivery on both streams')
  t.same(during, ['not held up by the missing subscriber', 'after'])
  t.same(before, ['first', 'second'])
})
