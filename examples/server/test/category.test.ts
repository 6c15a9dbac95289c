import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'

t.test('category polling under /category: a held subscribe gets what the keyed publish sends', async (t) => {
  const { app, endpoints } = await buildApp({ ...configFromEnv({}), broadcastKey: 'key', port: 0, redisUrl: undefined })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  t.ok(endpoints.some((e) => e.method === 'GET' && e.path === '/category/events'))
  t.ok(endpoints.some((e) => e.method === 'POST' && e.path === '/category/publish'))

  const held = fetch(`${address}/category/events?category=farm&timeout=30`)
  // The subscribe is held until the publish below arrives: wait until it is parked on the broker.
  while ((app.rt.broker as unknown as { streams: Map<string, unknown> }).streams.get('farm') === undefined) {
    await new Promise((resolve) => setImmediate(resolve))
  }
  const refused = await fetch(`${address}/category/publish`, { method: 'POST', body: '{"category":"farm","data":"oink"}' })
  t.equal(refused.status, 401, 'publishing needs the broadcast key')
  const published = await fetch(`${address}/category/publish`, {
    method: 'POST',
    headers: { authorization: 'Bearer key' },
    body: '{"category":"farm","data":"oink"}'
  })
  t.equal(published.status, 200)
  t.equal(await published.text(), '{"success": true}')
  const answer = await (await held).json() as { events: Array<{ category: string; data: unknown; id: string }> }
  t.match(answer.events, [{ category: 'farm', data: 'oink', id: /^[0-9a-f]{8}-[0-9a-f]{4}-8000-8000-000000000001$/ }])

  // A /_broadcast to stream "farm" is an event of category "farm".
  const broadcast = await fetch(`${address}/_broadcast`, { method: 'POST', headers: { authorization: 'Bearer key' }, body: '{"stream":"farm","data":"\\"moo\\""}' })
  t.equal(broadcast.status, 201)
  const last = answer.events[0]!
  const next = await (await fetch(`${address}/category/events?category=farm&timeout=5&since_time=0&last_id=${encodeURIComponent(last.id)}`)).json() as { events: Array<{ data: unknown }> }
  t.same(next.events.map((e) => e.data), ['moo'])
})
