import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'

// The done-check, over a real socket:
//   curl -i -X POST localhost:8080/lp --data-binary @subscribe.jsonl
//   curl -X POST -H 'X-Anycable-Poll-ID: …' localhost:8080/lp
// receives a message broadcast in between through /_broadcast.
t.test('long polling on the example server: subscribe, broadcast, poll', async (t) => {
  const { app, endpoints } = await buildApp({ ...configFromEnv({}), broadcastKey: 'key', port: 0, redisUrl: undefined })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  t.ok(endpoints.some((e) => e.path === '/lp'))

  const identifier = JSON.stringify({ channel: '$pubsub', stream_name: 'chat_1' })
  const connect = await fetch(`${base}/lp`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' }, // what curl --data-binary sends
    body: `${JSON.stringify({ command: 'subscribe', identifier })}\n`
  })
  t.equal(connect.status, 200)
  const pollId = connect.headers.get('x-anycable-poll-id')
  t.ok(pollId)
  const welcome = (await connect.text()).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
  t.same(welcome, [{ type: 'welcome', sid: pollId }, { type: 'confirm_subscription', identifier }])

  const broadcast = await fetch(`${base}/_broadcast`, {
    method: 'POST',
    headers: { authorization: 'Bearer key' },
    body: JSON.stringify({ stream: 'chat_1', data: JSON.stringify({ text: 'hello from curl' }) })
  })
  t.equal(broadcast.status, 201)

  const poll = await fetch(`${base}/lp`, { method: 'POST', headers: { 'x-anycable-poll-id': pollId! } })
  t.equal(poll.status, 200)
  const lines = (await poll.text()).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
  t.match(lines, [{ identifier, message: { text: 'hello from curl' }, stream_id: 'chat_1', offset: 1 }])
  t.equal(lines.length, 1, 'the broadcast, once')
})
