// Issue 14: no poison message, bounded input — over real sockets.
import t from 'tap'
import { connectTo, payloads, poll, post, pubsub, serve, subscribe, types } from './helpers.js'

const deep = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)
const broadcast = (url: string, body: unknown): Promise<Response> =>
  fetch(url.replace(/\/lp$/, '/_broadcast'), { method: 'POST', headers: { authorization: 'Bearer key' }, body: JSON.stringify(body) })

t.test('a deep identifier is a 400 with a reason, never a 500; the session of a valid line is unaffected', async (t) => {
  const { url } = await serve(t)
  const identifier = `{"channel":"$pubsub","stream_name":"s","p":${deep(3000)}}`
  const alone = await post(url, subscribe(identifier))
  t.equal(alone.status, 400)
  t.match(alone.lines, [{ type: 'error', reason: /identifier nested deeper than 100 levels/ }])
  const deeper = await post(url, subscribe(`{"channel":"$pubsub","stream_name":"s","p":${deep(6000)}}`))
  t.equal(deeper.status, 400, 'a 6,000-level identifier')
  const mixed = await post(url, [subscribe(identifier), subscribe(pubsub('ok'))].join('\n'))
  t.equal(mixed.status, 200)
  t.same(types(mixed.lines), ['welcome', 'error', 'confirm_subscription'])
  const long = await post(url, subscribe(JSON.stringify({ channel: '$pubsub', stream_name: 'n'.repeat(60_000) })))
  t.equal(long.status, 400, 'a 60 KB stream_name')
  t.match(long.lines, [{ reason: /identifier longer than 8192/ }])
})

t.test('a deep /_broadcast is refused; polls from history and connects asking for history get every later message', async (t) => {
  const { url } = await serve(t)
  const { id } = await connectTo(url, ['s'])
  const since = Math.floor(Date.now() / 1000) - 1
  t.equal((await broadcast(url, { stream: 's', data: deep(5000) })).status, 400)
  for (let i = 0; i < 10; i++) t.equal((await broadcast(url, { stream: 's', data: JSON.stringify({ i }) })).status, 201)
  const polled = await poll(url, id)
  t.equal(polled.status, 200)
  t.same(payloads(polled.lines), Array.from({ length: 10 }, (_, i) => ({ i })))
  const withHistory = await post(url, subscribe(pubsub('s'), { history: { since } }))
  t.equal(withHistory.status, 200)
  t.same(payloads(withHistory.lines), Array.from({ length: 10 }, (_, i) => ({ i })))
  t.equal(types(withHistory.lines).at(-1), 'confirm_history')
})

t.test('an accepted deep message (the app\'s own publish, 900 levels) is read from history by a pull session', async (t) => {
  const { app, url } = await serve(t)
  let value: unknown = 0
  for (let i = 0; i < 900; i++) value = [value]
  const since = Math.floor(Date.now() / 1000) - 1
  await app.rt.publish('d', value)
  await app.rt.publish('d', 'next')
  const connected = await post(url, subscribe(pubsub('d'), { history: { since } }))
  t.equal(connected.status, 200)
  t.same(payloads(connected.lines), [value, 'next'])
  const again = await poll(url, connected.pollId!)
  t.equal(again.status, 200, 'the saved session (its outbox held the deep message) polls on')
})

t.test('10,000 commands in one body: 413', async (t) => {
  const { url } = await serve(t, { pollInterval: 2, flushInterval: 20, keepaliveTimeout: 5, maxRequestSize: 4 * 1024 * 1024 })
  const response = await post(url, Array.from({ length: 10_000 }, () => '{"command":"pong"}').join('\n'))
  t.equal(response.status, 413)
  t.same(response.lines, [{ type: 'error', reason: 'line 101: more than 100 commands in one body' }])
  t.equal(response.pollId, null, 'no session')
})
