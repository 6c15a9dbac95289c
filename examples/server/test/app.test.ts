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
  const page = await fetch(`${address}/`)
  t.equal(page.status, 200)
  t.match(await page.text(), /<title>rt chat<\/title>/)
  const client = await fetch(`${address}/vendor/rt-client/index.js`)
  t.equal(client.status, 200)
  t.match(client.headers.get('content-type'), /javascript/)
  t.equal((await fetch(`${address}/vendor/rt-client/../../package.json`)).status, 404, 'no path traversal')
  const index = await (await fetch(`${address}/endpoints`)).json() as { endpoints: Array<{ path: string }> }
  t.ok(index.endpoints.some((e) => e.path === '/_broadcast'))
  const res = await fetch(`${address}/_broadcast`, {
    method: 'POST',
    headers: { authorization: 'Bearer key' },
    body: '{"stream":"chat_1","data":"{\\"text\\":\\"hi\\"}"}'
  })
  t.equal(res.status, 201)
})
