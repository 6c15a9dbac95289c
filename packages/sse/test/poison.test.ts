// Issue 14: no poison message, bounded input — over real sockets.
import t from 'tap'
import { answer, http2, startApp, subscribed, type EventStream, type SseEvent } from './helpers.js'

const deep = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

/** `stream.take(n)`, failing clearly instead of hanging when the events never come. */
async function take(stream: EventStream, n: number): Promise<SseEvent[]> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`fewer than ${n} events arrived; received:\n${stream.text.slice(-2000)}`)), 15_000)
  })
  try {
    return await Promise.race([stream.take(n), timeout])
  } finally {
    clearTimeout(timer)
  }
}

const broadcast = (base: string, body: unknown): Promise<Response> =>
  fetch(`${base}/_broadcast`, { method: 'POST', headers: { authorization: 'Bearer key' }, body: JSON.stringify(body) })

t.test('a 5,000-level /_broadcast is refused; readers from history and live get every later message', async (t) => {
  const { base } = await startApp(t, { broadcastKey: 'key' })
  const live = await subscribed(`${base}/events?stream=s`)
  const before = Math.floor(Date.now() / 1000) - 1
  t.equal((await broadcast(base, { stream: 's', data: deep(5000) })).status, 400, 'the poison is refused at the entry')
  for (let i = 0; i < 100; i++) t.equal((await broadcast(base, { stream: 's', data: JSON.stringify({ i }) })).status, 201)
  const fromHistory = await subscribed(`${base}/events?stream=s&history_since=${before}`)
  const events = await take(fromHistory, 101)
  t.same(events.filter((e) => e.event === 'message').map((e) => JSON.parse(e.data) as unknown), Array.from({ length: 100 }, (_, i) => ({ i })),
    'all 100 later messages from history')
  t.equal(events.at(-1)!.event, 'confirm_history')
  t.equal((await take(live, 100)).length, 100, 'and live')
  fromHistory.close()
  live.close()
})

t.test('an accepted deep message (900 levels, the app\'s own publish) is delivered live, from history and on POST streams', async (t) => {
  const { app, base } = await startApp(t)
  let value: unknown = 0
  for (let i = 0; i < 900; i++) value = [value]
  const live = await subscribed(`${base}/events?stream=d`)
  const post = await subscribed(`${base}/events`, 1, { method: 'POST', body: JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'd' }) }) })
  const before = Math.floor(Date.now() / 1000) - 1
  const stored = await app.rt.publish('d', value)
  await app.rt.publish('d', 'next')
  const json = JSON.stringify(value)
  t.same((await take(live, 2)).map((e) => e.data), [json, 'next'])
  const [deepFrame, next] = await take(post, 2)
  t.equal(JSON.stringify((JSON.parse(deepFrame!.data) as { message: unknown }).message), json, 'the POST frame carries the stored text')
  t.equal((JSON.parse(next!.data) as { message: unknown }).message, 'next')
  const history = await subscribed(`${base}/events?stream=d&history_since=${before}`)
  t.same((await take(history, 3)).map((e) => e.event === 'message' ? e.data : e.event), [json, 'next', 'confirm_history'])
  t.equal(stored.offset, 1)
  live.close()
  post.close()
  history.close()
})

t.test('identifiers, stream names, Last-Event-ID and POST bodies are bounded', async (t) => {
  const { base } = await startApp(t, {}, { bodyLimit: 4 * 1024 * 1024 })
  const deepIdentifier = await answer(`${base}/events?identifier=${encodeURIComponent(`{"channel":"$pubsub","stream_name":"s","p":${deep(1000)}}`)}`)
  t.equal(deepIdentifier.status, 400)
  t.match(deepIdentifier.body, /identifier nested deeper than 100 levels/)
  const longName = await answer(`${base}/events?stream=${'n'.repeat(5000)}`)
  t.equal(longName.status, 400, 'a stream name over 1024 characters is rejected')
  t.match(longName.body, /subscription rejected/)
  const postLong = await answer(`${base}/events`, {
    method: 'POST',
    body: JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'n'.repeat(60_000) }) })
  })
  t.equal(postLong.status, 400, 'a 60 KB stream_name')
  t.match(postLong.body, /identifier longer than 8192 characters/)
  const postDeep = await answer(`${base}/events`, { method: 'POST', body: `{"command":"subscribe","identifier":"{}","x":${deep(5000)}}` })
  t.equal(postDeep.status, 400)
  t.match(postDeep.body, /line 1: JSON nested deeper than 100 levels/)
  const command = JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 's' }) })
  const many = await answer(`${base}/events`, { method: 'POST', body: Array.from({ length: 10_000 }, () => command).join('\n') })
  t.equal(many.status, 413, '10,000 commands in one body')
  t.match(many.body, /more than 100 commands in one body/)
  const over = await answer(`${base}/events`, { method: 'POST', body: Array.from({ length: 101 }, () => command).join('\n') })
  t.equal(over.status, 413, '101 commands: over the default limit, within the body limit')
  t.match(over.body, /line 101: more than 100 commands in one body/)
  const cursor = (n: number): string => `~${Array.from({ length: n }, (_, i) => `1/E/s${i}`).join(',')}`
  const tooMany = await answer(`${base}/events?stream=s`, { headers: { 'last-event-id': cursor(300) } })
  t.equal(tooMany.status, 431, 'a Last-Event-ID of 300 streams')
  t.match(tooMany.body, /more than 256 streams/)
  const huge = answer(`${base}/events?stream=s`, { headers: { 'last-event-id': cursor(10_000) } })
  // Past Node's header limits: HTTP/1.1's parser answers 431; HTTP/2's layer refuses the stream before any route.
  if (http2) await t.rejects(huge, { code: 'ERR_HTTP2_STREAM_ERROR' }, 'a Last-Event-ID of 10,000 streams: refused by HTTP/2')
  else t.equal((await huge).status, 431, 'a Last-Event-ID of 10,000 streams')
  const inQuery = await answer(`${base}/events?stream=s&last_event_id=${encodeURIComponent(cursor(300))}`)
  t.equal(inQuery.status, 400, 'the same cursor in the query string')
  const fine = await subscribed(`${base}/events?stream=s`)
  fine.close()
  t.pass('the server goes on')
})
