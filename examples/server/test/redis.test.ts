import { randomBytes } from 'node:crypto'
import t from 'tap'
import { RedisBroker } from '@rt/redis'
import { Redis } from 'ioredis'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'

// REDIS_URL switches the example to @rt/redis: two example servers then share streams.
const url = process.env.RT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

t.test('with REDIS_URL two example servers share streams through Redis', async (t) => {
  const config = { ...configFromEnv({ REDIS_URL: url }), broadcastKey: 'key' }
  const a = await buildApp(config)
  const b = await buildApp(config)
  t.teardown(async () => {
    await a.app.close()
    await b.app.close()
  })
  t.type(a.app.rt.broker, RedisBroker)
  const stream = `example-${randomBytes(4).toString('hex')}`
  t.teardown(async () => {
    const redis = new Redis(url)
    await redis.del(`rt:{${stream}}:m`, `rt:{${stream}}:h`)
    redis.disconnect()
  })
  const res = await a.app.inject({
    method: 'POST',
    url: '/_broadcast',
    headers: { authorization: 'Bearer key' },
    payload: JSON.stringify({ stream, data: '{"text":"hi"}' })
  })
  t.equal(res.statusCode, 201)
  const history = await b.app.rt.broker.history(stream, { since: 0 })
  t.same(history.messages.map((m) => m.data), [{ text: 'hi' }], 'published on one server, stored for the other')
})
