import t from 'tap'
import { openEventSource, startBin, waitFor } from './helpers.js'

const REDIS_URL = 'redis://127.0.0.1:6379'

t.test('--redis_url makes two bins act as one', async (t) => {
  const prefix = `rt-server-test-${process.pid}-${Date.now()}:`
  const args = ['--host', '127.0.0.1', '--port', '0', '--sse', '--poll', '--poll_flush_interval', '0', '--category_poll', '--public_streams',
    '--broadcast_key', 'k', '--redis_url', REDIS_URL, '--redis_key_prefix', prefix]
  const a = startBin(args, {}, t.teardown)
  const b = startBin(args, {}, t.teardown)
  const [urlA, urlB] = await Promise.all([a.url(), b.url()])

  const { data: received } = await openEventSource(`${urlA}/events?stream=shared`, t.teardown)

  // A long-poll session opened on A and polled on B: sessions live in Redis, no sticky sessions.
  const connect = await fetch(`${urlA}/lp`, {
    method: 'POST',
    body: JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'shared' }) })
  })
  const pollId = connect.headers.get('x-anycable-poll-id')!
  t.match(await connect.text(), /confirm_subscription/)
  const held = fetch(`${urlB}/lp`, { method: 'POST', headers: { 'x-anycable-poll-id': pollId } })
  const since = Date.now() - 1000

  const published = await fetch(`${urlB}/_broadcast`, { method: 'POST', headers: { authorization: 'Bearer k' }, body: JSON.stringify({ stream: 'shared', data: '"from B"' }) })
  t.equal(published.status, 201, 'published on B')
  await waitFor(() => received.length === 1, 'the message on A')
  t.equal(received[0], 'from B', 'an SSE client of A receives what B published')
  t.match(await (await held).text(), /"message":"from B"/, 'the poll of A\'s session answered by B')
  const category = await (await fetch(`${urlA}/category/events?category=shared&timeout=5&since_time=${since}`)).json() as { events: Array<{ data: unknown }> }
  t.same(category.events.map((event) => event.data), ['from B'], 'category polling on A reads B\'s history')
})
