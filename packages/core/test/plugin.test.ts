import Fastify from 'fastify'
import t from 'tap'
import { MemoryBroker } from '../src/memory-broker.js'
import { rtCore } from '../src/plugin.js'
import type { RtCoreOptions } from '../src/options.js'
import { MemorySessionStore } from '../src/session-store.js'

async function register(options: RtCoreOptions): Promise<unknown> {
  const app = Fastify()
  try {
    await app.register(rtCore, options)
    await app.ready()
    return undefined
  } catch (error) {
    return error
  } finally {
    await app.close()
  }
}

t.test('invalid options fail at register time with clear messages', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ secret: '' }, /@rt\/core: secret must be a non-empty string/],
    [{ broadcastKey: 42 }, /broadcastKey/],
    [{ broker: {} }, /broker must implement/],
    [{ broadcast: 'yes' }, /broadcast must be false or an object/],
    [{ broadcast: { authorize: 1 } }, /broadcast.authorize must be a function/],
    [{ broadcast: { bodyLimit: -1 } }, /bodyLimit/],
    [{ broadcast: { path: 'nope' } }, /broadcast.path must be a path/],
    [{ metrics: { path: 'metrics' } }, /metrics.path/],
    [{ authenticate: 'x' }, /authenticate must be a function/],
    [{ channels: 5 }, /channels must be an object/],
    [{ channels: { A: 1 } }, /channel A must be an object/],
    [{ channels: { A: null } }, /channel A must be an object/],
    [{ channels: { $pubsub: {} } }, /reserved/],
    [{ sessionsTtl: -1 }, /sessionsTtl/],
    [{ sessionsTtl: '5' }, /sessionsTtl/],
    [{ streamsSecret: '' }, /streamsSecret/]
  ]
  for (const [options, message] of cases) {
    const error = await register(options as RtCoreOptions)
    t.match((error as Error | undefined)?.message, message, JSON.stringify(options))
  }
})

t.test('registering twice is refused', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(rtCore)
  await t.rejects(async () => {
    await app.register(rtCore)
  }, /already registered/)
})

t.test('fastify.rt: broker, hub, publish; metrics route; close releases what it created', async (t) => {
  const app = Fastify()
  await app.register(rtCore, { metrics: true, broadcast: false })
  await app.ready()
  const received: unknown[] = []
  app.rt.broker.subscribe('s', (m) => received.push(m.data))
  const message = await app.rt.publish('s', { a: 1 })
  t.equal(message.offset, 1)
  t.same(received, [{ a: 1 }])
  t.ok(app.rt.hub)
  app.rt.metrics.gauge('test_gauge', 'a test').set(7)
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.body, /test_gauge 7/)
  t.equal((await app.inject({ method: 'POST', url: '/_broadcast' })).statusCode, 404, 'broadcast: false registers no route')
  await app.close()
  await t.rejects(app.rt.broker.publish('s', 1), { name: 'BrokerUnavailableError' })
})

t.test('a broker and store passed in are the caller\'s to close', async (t) => {
  const broker = new MemoryBroker()
  const store = new MemorySessionStore()
  t.teardown(async () => {
    await broker.close()
    await store.close()
  })
  const app = Fastify()
  await app.register(rtCore, { broker, sessionStore: store, metrics: { path: '/m' }, broadcast: { path: '/pub' }, channels: { Ok: {} } })
  t.equal((await app.inject('/m')).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/pub' })).statusCode, 401)
  await app.close()
  t.equal((await broker.publish('s', 1)).offset, 1, 'still open')
  t.equal(app.rt.hub.store, store)
})
