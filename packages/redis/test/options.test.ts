import t from 'tap'
import { BrokerUnavailableError } from '@rt/core'
import { Redis, ReplyError } from 'ioredis'
import { RedisBroker, RedisSessionStore, type RedisBrokerOptions } from '../src/index.js'
import { unavailable } from '../src/connection.js'
import { consoleLogger } from '../src/options.js'
import { admin, cleanup, REDIS_URL, uniquePrefix } from './helpers.js'

const redis = await admin(t)
const prefix = uniquePrefix('options')
t.teardown(() => cleanup(redis, prefix))

t.test('options are checked at construction, errors prefixed with the package name', async (t) => {
  const make = (options: unknown) => () => new RedisBroker(options as RedisBrokerOptions)
  t.throws(make(undefined), { name: 'TypeError', message: /^@rt\/redis: options must be an object/ })
  t.throws(make({}), /pass exactly one of `url`, `cluster` and `client`/)
  t.throws(make({ url: REDIS_URL, client: redis }), /pass exactly one of `url`, `cluster` and `client`/)
  t.throws(make({ url: REDIS_URL, cluster: [{ port: 7000 }] }), /pass exactly one/)
  t.throws(make({ cluster: [] }), /cluster must be a non-empty array of nodes/)
  t.throws(make({ cluster: 'redis://x' }), /cluster must be a non-empty array of nodes/)
  t.throws(make({ url: REDIS_URL, clusterOptions: {} }), /clusterOptions only apply with `cluster`/)
  t.throws(make({ cluster: [{ port: 7000 }], redisOptions: {} }), /redisOptions only apply with `url`/)
  t.throws(make({ url: '' }), /url must be a non-empty string/)
  t.throws(make({ client: {} }), /client must be an ioredis client/)
  t.throws(make({ client: redis, redisOptions: {} }), /redisOptions only apply with `url`/)
  t.throws(make({ client: redis, keyPrefix: 5 }), /keyPrefix must be a string/)
  t.throws(make({ client: redis, connectionName: 'has space' }), /connectionName must be printable ASCII/)
  t.throws(make({ client: redis, logger: { warn: () => undefined } }), /logger must have warn\(\) and error\(\)/)
  t.throws(make({ client: redis, historyLimit: -1 }), /historyLimit must be a non-negative integer/)
  t.throws(make({ client: redis, historyLimit: 1.5 }), /historyLimit/)
  t.throws(make({ client: redis, historyTtl: 0 }), /historyTtl must be a positive number of seconds/)
  t.throws(make({ client: redis, streamTtl: 'long' }), /streamTtl must be a positive number/)
  t.throws(make({ client: redis, pubsub: 'fast' }), /pubsub must be 'sharded' or 'classic'/)
  t.throws(make({ client: redis, publishBatch: 0 }), /publishBatch must be a positive integer/)
  t.throws(make({ client: redis, publishBatch: 2.5 }), /publishBatch must be a positive integer/)
  t.throws(() => new RedisSessionStore({ url: REDIS_URL, client: redis } as never), /pass exactly one/)
})

t.test('a client passed in is shared, not closed; a subscriber duplicated from it is closed', async (t) => {
  const client = new Redis(REDIS_URL, { lazyConnect: true })
  t.teardown(() => client.disconnect())
  const broker = new RedisBroker({ client, keyPrefix: prefix, connectionName: `rt-test-shared-${process.pid}` })
  const sessions = new RedisSessionStore({ client, keyPrefix: prefix })
  t.equal(client.status, 'wait')
  const message = await broker.publish('shared', 1)
  t.equal(message.offset, 1, 'the first call connects a lazy client')
  broker.subscribe('shared', () => undefined)
  await broker.position('shared')
  await sessions.create({ sid: 'x', identity: {}, subscriptions: {}, positions: {}, outbox: [], transport: {}, lease: 0, createdAt: 0 }, 5000)
  await sessions.delete('x')
  t.equal(await sessions.get('x'), undefined)
  await broker.close()
  await sessions.close()
  await sessions.close()
  t.equal(await client.ping(), 'PONG', 'still usable by its owner')
  t.throws(() => broker.subscribe('shared', () => undefined), BrokerUnavailableError)
  await t.rejects(broker.history('shared', { since: 0 }), { name: 'BrokerUnavailableError', message: /closed/ })
  await t.rejects(sessions.get('x'), BrokerUnavailableError)
})

t.test('a first connection that ends before it is made fails the calls waiting for it', async (t) => {
  const client = new Redis(REDIS_URL, { lazyConnect: true })
  const broker = new RedisBroker({ client, keyPrefix: prefix })
  t.teardown(() => broker.close())
  const pending = broker.publish('never', 1)
  client.disconnect()
  await t.rejects(pending, { name: 'BrokerUnavailableError', message: /connection closed/ })
})

t.test('unavailable(): answers from Redis stay as they are, connection failures become BrokerUnavailableError', async (t) => {
  const reply = new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value')
  t.equal(unavailable(reply, 'publish'), reply)
  const already = new BrokerUnavailableError('x')
  t.equal(unavailable(already, 'publish'), already)
  const closed = unavailable(new Error('Connection is closed.'), 'publish')
  t.type(closed, BrokerUnavailableError)
  t.equal(closed.message, '@rt/redis: publish failed: Redis is unreachable (Connection is closed.)')
  t.match(unavailable('odd', 'history'), { message: /\(odd\)/ })
})

t.test('a key of the wrong type is reported as it is, not as an outage', async (t) => {
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix })
  t.teardown(() => broker.close())
  await redis.set(`${prefix}{wrong}:m`, 'a string')
  await t.rejects(broker.publish('wrong', 1), { message: /WRONGTYPE/ })
})

t.test('the default logger writes to the console', async (t) => {
  const warn = t.capture(console, 'warn')
  const error = t.capture(console, 'error')
  consoleLogger.warn({ err: new Error('refused') }, '@rt/redis: lost')
  consoleLogger.error({}, '@rt/redis: threw')
  t.same(warn.args(), [['@rt/redis: lost', 'refused']])
  t.same(error.args(), [['@rt/redis: threw', '']])
})
