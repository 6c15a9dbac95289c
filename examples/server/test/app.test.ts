import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'

t.test('config from the environment', async (t) => {
  const generated = configFromEnv({})
  t.equal(generated.port, 8080)
  t.equal(generated.host, '127.0.0.1')
  t.equal(generated.generatedKey, true)
  t.match(generated.broadcastKey, /^[0-9a-f]{32}$/)
  const given = configFromEnv({ PORT: '9000', HOST: '0.0.0.0', RT_BROADCAST_KEY: 'k', RT_STREAMS_SECRET: 's', REDIS_URL: 'redis://x' })
  t.same([given.port, given.host, given.broadcastKey, given.generatedKey, given.streamsSecret, given.redisUrl], [9000, '0.0.0.0', 'k', false, 's', 'redis://x'])
  t.throws(() => configFromEnv({ PORT: 'abc' }), /PORT/)
})

t.test('the example server answers / and accepts a broadcast', async (t) => {
  const { app } = await buildApp({ ...configFromEnv({}), broadcastKey: 'key', port: 0 })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const index = await (await fetch(`${address}/`)).json() as { endpoints: Array<{ path: string }> }
  t.ok(index.endpoints.some((e) => e.path === '/_broadcast'))
  const res = await fetch(`${address}/_broadcast`, {
    method: 'POST',
    headers: { authorization: 'Bearer key' },
    body: '{"stream":"chat_1","data":"{\\"text\\":\\"hi\\"}"}'
  })
  t.equal(res.status, 201)
})
