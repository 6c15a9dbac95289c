import t from 'tap'
import { connectTo, post, pubsub, serve, subscribe, types } from './helpers.js'

t.test('any Content-Type (or none) is read as JSONL', async (t) => {
  const { url } = await serve(t)
  for (const contentType of [undefined, 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'application/json', 'application/octet-stream']) {
    const headers: Record<string, string> = contentType === undefined ? {} : { 'content-type': contentType }
    const response = await post(url, subscribe(pubsub('a')), headers)
    t.same(types(response.lines), ['welcome', 'confirm_subscription'], String(contentType))
  }
})

t.test('the last line may lack its newline; blank lines and CRLF are fine', async (t) => {
  const { url } = await serve(t)
  const { id } = await connectTo(url)
  // As AnyCable's client sends a poll: commands joined by \n, none after the last.
  const response = await post(url, `${subscribe(pubsub('a'))}\r\n\n${subscribe(pubsub('b'))}`, { 'x-anycable-poll-id': id })
  t.same(response.lines.map((line) => line.identifier), [pubsub('a'), pubsub('b')])
})

t.test('a bad line gets an error line and the rest is processed', async (t) => {
  const { url } = await serve(t)
  const body = [subscribe(pubsub('a')), '{not json', JSON.stringify({ command: 'dance' }), JSON.stringify({ command: 'subscribe' }), subscribe(pubsub('b'))].join('\n')
  const response = await post(url, body)
  t.equal(response.status, 200)
  t.same(response.lines.slice(1), [
    { type: 'confirm_subscription', identifier: pubsub('a') },
    { type: 'error', line: 2, reason: 'malformed JSON' },
    { type: 'error', line: 3, reason: 'unknown command: dance' },
    { type: 'error', line: 4, reason: 'invalid subscribe command: identifier Expected required property' },
    { type: 'confirm_subscription', identifier: pubsub('b') }
  ])
})

t.test('nothing parsable at all: 400 with the reason, no session', async (t) => {
  const { app, url } = await serve(t)
  const response = await post(url, 'hello\n[1,2]\n')
  t.equal(response.status, 400)
  t.equal(response.pollId, null)
  t.same(response.lines, [{ type: 'error', reason: 'no valid command in the body (line 1: malformed JSON; line 2: a command must be a JSON object)' }])
  const { id } = await connectTo(url)
  const bad = await post(url, 'nope', { 'x-anycable-poll-id': id })
  t.equal(bad.status, 400, 'on a poll too')
  t.equal(app.rt.hub.streamCount, 0)
})

t.test('a body over maxRequestSize: 413', async (t) => {
  const { url } = await serve(t, { maxRequestSize: 100 })
  const big = await fetch(url, { method: 'POST', body: `${subscribe(pubsub('x'.repeat(200)))}\n` })
  t.equal(big.status, 413)
  const fits = await post(url, subscribe(pubsub('y')))
  t.equal(fits.status, 200)
})

t.test('only POST; headers read are validated', async (t) => {
  const { url } = await serve(t)
  t.equal((await fetch(url)).status, 404)
  const long = await post(url, undefined, { 'x-anycable-poll-id': 'x'.repeat(500) })
  t.equal(long.status, 400)
})
