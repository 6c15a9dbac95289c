import Fastify from 'fastify'
import t from 'tap'
import { BrokerUnavailableError, rtCore, unavailableErrorHandler } from '../src/index.js'
import { assertUnavailable, unavailableBroker, unavailableStore } from '../src/testing/index.js'

// Core's endpoints with a broker (and a session store) that cannot be reached: 503 with Retry-After, or unaffected; never 500.
t.test('/_broadcast answers 503 and /metrics still answers', async (t) => {
  const app = Fastify()
  await app.register(rtCore, { broker: unavailableBroker(), sessionStore: unavailableStore(), broadcastKey: 'key', metrics: true })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/_broadcast', headers: { authorization: 'Bearer key' }, payload: '{"stream":"a","data":"1"}' })
  assertUnavailable(t, { status: res.statusCode, retryAfter: res.headers['retry-after'] as string | undefined, body: res.body }, '/_broadcast')
  t.equal((await app.inject('/metrics')).statusCode, 200, '/metrics does not need the broker')
})

t.test('unavailableErrorHandler answers outages and leaves every other error to the app', async (t) => {
  const app = Fastify({ logger: false })
  app.setErrorHandler((error, _request, reply) => reply.code(418).send({ app: (error as Error).message }))
  app.route({ method: 'GET', url: '/down', errorHandler: unavailableErrorHandler(), handler: async () => { throw new BrokerUnavailableError('@rt/redis: 10.0.0.1:6379 unreachable') } })
  app.route({ method: 'GET', url: '/bug', errorHandler: unavailableErrorHandler({ error: 'own shape' }), handler: async () => { throw new Error('bug') } })
  app.route({ method: 'GET', url: '/shaped', errorHandler: unavailableErrorHandler('{"error": "later"}'), handler: async () => { throw new BrokerUnavailableError('x') } })
  const down = await app.inject('/down')
  assertUnavailable(t, { status: down.statusCode, retryAfter: down.headers['retry-after'] as string, body: down.body }, 'outage')
  const bug = await app.inject('/bug')
  t.equal(bug.statusCode, 418)
  t.same(bug.json(), { app: 'bug' })
  const shaped = await app.inject('/shaped')
  assertUnavailable(t, { status: shaped.statusCode, retryAfter: shaped.headers['retry-after'] as string, body: shaped.body }, 'own shape', { error: 'later' })
})

t.test('the outage doubles reject every call but subscribe and close', async (t) => {
  const broker = unavailableBroker()
  const store = unavailableStore()
  const state = { sid: 's', identity: {}, subscriptions: {}, positions: {}, outbox: [], transport: {}, lease: 0, createdAt: 0 }
  const calls: Array<Promise<unknown>> = [
    broker.publish('a', 1), broker.history('a', { since: 0 }), broker.position('a'), broker.remove('a', [1]),
    store.get('s'), store.create(state, 1), store.claim('s', 1), store.save(state, 1), store.delete('s')
  ]
  for (const call of calls) await t.rejects(call, BrokerUnavailableError)
  broker.subscribe('a', () => undefined)()
  await broker.close()
  await store.close()
})
