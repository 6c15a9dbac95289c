import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { connect as connectHttp2 } from 'node:http2'
import { connect as connectTcp } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { deriveBroadcastKey } from '@rt/core'
import { resolveConfig } from '../src/config.js'
import { actionCableOptions, jwtOptions, startServer, type RtServer, type StartServerOptions } from '../src/server.js'
import type { ServerConfig } from '../src/schema.js'
import { openEventSource, railsSignedStreamName, tcpHandles, waitFor } from './helpers.js'

const quiet = { host: '127.0.0.1', port: 0, log_level: 'silent' } as const

async function start(t: Test, options: StartServerOptions): Promise<RtServer> {
  const server = await startServer({ ...quiet, ...options })
  t.teardown(() => server.stop({ timeoutMs: 1000 }))
  return server
}

function broadcast(server: RtServer, key: string | undefined, body: unknown, path = '/_broadcast'): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) },
    body: JSON.stringify(body)
  })
}

t.test('SSE, long polling, category polling and broadcast answer on the configured paths', async (t) => {
  const server = await start(t, {
    sse: true, sse_path: '/sse', poll: true, poll_path: '/poll', poll_flush_interval: 0, category_poll: true,
    category_subscribe_path: '/cat/sub', category_publish_path: '/cat/pub', public_streams: true,
    broadcast_key: 'k', http_broadcast_path: '/bc', ping_interval: 60
  })
  t.same(server.endpoints.map((e) => e.path), ['/bc', '/sse', '/poll', '/cat/sub', '/cat/pub', '/health'])
  t.equal(server.url, `http://127.0.0.1:${server.port}`)

  const sse = await openEventSource(`${server.url}/sse?stream=news`, t.teardown)

  const connect = await fetch(`${server.url}/poll`, {
    method: 'POST',
    body: `${JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'news' }) })}\n`
  })
  t.equal(connect.status, 200)
  const pollId = connect.headers.get('x-anycable-poll-id')!
  t.match(await connect.text(), /"type":"welcome".*\n.*"type":"confirm_subscription"/)

  const since = Date.now() - 1000
  t.equal((await broadcast(server, 'k', { stream: 'news', data: JSON.stringify({ n: 1 }) }, '/bc')).status, 201)
  t.equal((await broadcast(server, 'wrong', { stream: 'news', data: '{}' }, '/bc')).status, 401)
  t.equal((await broadcast(server, 'k', { stream: 'news', data: '{}' })).status, 404, 'nothing at the default path')

  await waitFor(() => sse.messages.length === 1, 'the SSE message')
  t.equal(sse.messages[0]!.data, '{"n":1}')
  t.match(sse.messages[0]!.lastEventId, /^1\/[^/]+\/news$/)
  const polled = await (await fetch(`${server.url}/poll`, { method: 'POST', headers: { 'x-anycable-poll-id': pollId } })).text()
  t.match(polled, /"message":\{"n":1\}/)
  const category = await (await fetch(`${server.url}/cat/sub?category=news&timeout=5&since_time=${since}`)).json() as { events: Array<{ data: unknown }> }
  t.same(category.events.map((e) => e.data), ['{"n":1}'], 'category news is stream news, its data the string as broadcast')

  const published = await fetch(`${server.url}/cat/pub`, { method: 'POST', headers: { authorization: 'Bearer k' }, body: JSON.stringify({ category: 'news', data: 'two' }) })
  t.equal(published.status, 200)
  await waitFor(() => sse.messages.length === 2, 'the golongpoll publication over SSE')
  t.equal(sse.messages[1]!.data, 'two')
  t.equal((await fetch(`${server.url}/health`)).status, 200)
  t.equal(await (await fetch(`${server.url}/health`)).text(), 'OK')
})

t.test('--secret derives the broadcast key; --public opens broadcasting and public streams', async (t) => {
  const secret = await start(t, { category_poll: true, secret: 's3cret' })
  t.equal((await broadcast(secret, deriveBroadcastKey('s3cret'), { stream: 'x', data: '1' })).status, 201)
  t.equal((await broadcast(secret, undefined, { stream: 'x', data: '1' })).status, 401)

  const open = await start(t, { category_poll: true, sse: true, public: true })
  t.equal((await broadcast(open, undefined, { stream: 'x', data: '1' })).status, 201)
  t.equal((await fetch(`${open.url}/category/publish`, { method: 'POST', body: JSON.stringify({ category: 'x', data: 'y' }) })).status, 200)
  await openEventSource(`${open.url}/events?stream=x`, t.teardown) // resolves once confirmed: a public stream in public mode

  const closed = await start(t, { category_poll: true, sse: true })
  t.same(closed.endpoints.map((e) => e.path), ['/_broadcast', '/events', '/category/events', '/health'], 'no publish endpoint without a key')
  t.equal((await broadcast(closed, undefined, { stream: 'x', data: '1' })).status, 401)
  const refused = await fetch(`${closed.url}/events?stream=x`)
  t.equal(refused.status, 400, 'public streams are off by default')
  await refused.body?.cancel()
})

t.test('Turbo Streams: a Rails-signed stream name through EventSource, broadcasts via /_broadcast', async (t) => {
  const secret = 'rails-turbo-secret'
  const server = await start(t, { sse: true, turbo_streams: true, secret, ping_interval: 60 })
  const stream = 'gid://app/Room/1:messages'
  const sse = await openEventSource(`${server.url}/events?turbo_signed_stream_name=${encodeURIComponent(railsSignedStreamName(stream, secret))}`, t.teardown)
  // turbo-rails with AnyCable's HTTP broadcaster: data is the JSON text of the rendered <turbo-stream> element.
  const html = '<turbo-stream action="append" target="messages"><template><p>hi</p></template></turbo-stream>'
  t.equal((await broadcast(server, deriveBroadcastKey(secret), { stream, data: JSON.stringify(html) })).status, 201)
  await waitFor(() => sse.messages.length === 1, 'the Turbo Stream')
  t.equal(sse.messages[0]!.data, html, 'EventSource gets the HTML itself, as <turbo-stream-source> needs')

  const forged = await fetch(`${server.url}/events?turbo_signed_stream_name=${encodeURIComponent(railsSignedStreamName(stream, 'other'))}`)
  t.equal(forged.status, 400, 'a name signed with another key is refused')
  await forged.body?.cancel()

  const dedicated = await start(t, { sse: true, turbo_streams: true, turbo_streams_secret: 'turbo-key', streams_secret: 'streams-key' })
  const ok = await fetch(`${dedicated.url}/events?turbo_signed_stream_name=${encodeURIComponent(railsSignedStreamName(stream, 'turbo-key'))}`)
  t.equal(ok.status, 200, '--turbo_streams_secret verifies Turbo names')
  await ok.body?.cancel()

  const off = await start(t, { sse: true, secret })
  const refused = await fetch(`${off.url}/events?turbo_signed_stream_name=${encodeURIComponent(railsSignedStreamName(stream, secret))}`)
  t.equal(refused.status, 400, 'without --turbo_streams Turbo names are refused, as anycable-go')
  await refused.body?.cancel()
})

t.test('stop() answers a held poll and an SSE client, closes within the timeout and leaves no handles', async (t) => {
  const before = tcpHandles()
  const server = await startServer({ ...quiet, sse: true, poll: true, category_poll: true, public_streams: true, ping_interval: 60, poll_interval: 60 })
  const sse = await openEventSource(`${server.url}/events?stream=s`, t.teardown)

  const connect = await fetch(`${server.url}/lp`, { method: 'POST' })
  const pollId = connect.headers.get('x-anycable-poll-id')!
  await connect.text()
  // Two held requests: an AnyCable poll (held up to poll_interval) and a golongpoll subscription (up to its timeout).
  const heldPoll = fetch(`${server.url}/lp`, { method: 'POST', headers: { 'x-anycable-poll-id': pollId } })
  const heldCategory = fetch(`${server.url}/category/events?category=c&timeout=60`)
  await waitFor(() => server.app.rt.hub.listeners('s') === 1, 'the SSE session')
  await new Promise((resolve) => setTimeout(resolve, 50))

  const result = await server.stop({ timeoutMs: 5000 })
  t.same(result, { forced: false }, 'everything closed before the timeout')
  await waitFor(() => sse.disconnect !== undefined, 'the disconnect event')
  t.same(JSON.parse(sse.disconnect!), { type: 'disconnect', reason: 'server_restart', reconnect: true })
  const poll = await heldPoll
  t.equal(poll.status, 200, 'the held poll was answered')
  await poll.text()
  const category = await heldCategory
  t.equal(category.status, 200)
  t.match(await category.json(), { timeout: 'no events before timeout' })
  t.equal(server.stop(), server.stop(), 'stop() again is the same promise')
  await waitFor(() => tcpHandles() <= before, 'every socket to close', 5000)
  t.ok(tcpHandles() <= before, 'no server or socket left behind')
  const refused = await fetch(server.url).then(() => 'answered', () => 'refused')
  t.equal(refused, 'refused', 'nothing listens any more')
})

t.test('stop() cuts connections still open at the timeout', async (t) => {
  const server = await startServer({ ...quiet, broadcast_key: 'k' })
  const socket = connectTcp(server.port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  // A request whose body never completes keeps the server from closing gracefully.
  socket.write('POST /_broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"str')
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.on('error', () => {})
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(await server.stop({ timeoutMs: 200 }), { forced: true })
  await closed
  t.pass('the stuck connection was cut')
})

t.test('a journal file keeps history across a restart and is flushed on stop', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'rt-server-journal-')), 'events.jsonl')
  const options = { category_poll: true, broadcast_key: 'k', file_persistor_file_name: file, file_persistor_write_flush_period_seconds: 60 }
  const first = await startServer({ ...quiet, ...options })
  t.equal((await broadcast(first, 'k', { stream: 'farm', data: JSON.stringify('oink') })).status, 201)
  await first.stop({ timeoutMs: 2000 })
  const second = await start(t, options)
  const answer = await (await fetch(`${second.url}/category/events?category=farm&timeout=1&since_time=1`)).json() as { events: Array<{ data: unknown }> }
  t.same(answer.events.map((e) => e.data), ['oink'], 'the event written at stop (batched writes) survived')

  await t.rejects(startServer({ ...quiet, file_persistor_file_name: join(file, 'not-a-dir', 'x') }), { name: 'ConfigError', message: /^--file_persistor_file_name: cannot open/ })
})

t.test('metrics, health and the session API', async (t) => {
  const server = await start(t, { poll: true, metrics_http: '/prom', health_path: '', sessions_api: true, sessions_api_path: '/s', allowed_origins: 'example.com' })
  t.same(server.endpoints.map((e) => e.path), ['/_broadcast', '/lp', '/s/{id}', '/prom'])
  t.match(await (await fetch(`${server.url}/prom`)).text(), /# HELP long_poll_clients_num/)
  t.equal((await fetch(`${server.url}/health`)).status, 404, 'an empty --health_path turns it off')
  const answer = await fetch(`${server.url}/s/abcdefghij1234567890abcdef?timeout=0`, { headers: { accept: 'application/json' } })
  t.equal(answer.status, 200)
  await answer.text()
})

t.test('HTTP/2 and HTTPS with --ssl_cert and --ssl_key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rt-server-tls-'))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' })
  const server = await start(t, { sse: true, public_streams: true, ssl_cert: cert, ssl_key: key, http2: true, ping_interval: 60 })
  t.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/)
  const session = connectHttp2(server.url, { rejectUnauthorized: false })
  t.teardown(() => session.close())
  const stream = session.request({ ':path': '/events?stream=h2' })
  const headers = await new Promise<Record<string, unknown>>((resolve) => stream.once('response', resolve))
  t.equal(headers[':status'], 200)
  stream.setEncoding('utf8')
  let text = ''
  stream.on('data', (chunk: string) => { text += chunk })
  await waitFor(() => text.includes('event: confirm_subscription'), 'the stream over HTTP/2')
  t.same(await server.stop({ timeoutMs: 5000 }), { forced: false }, 'the open HTTP/2 session gets GOAWAY: no wait for the timeout')
  t.match(text, /"reason":"server_restart","reconnect":true/)

  const https = await start(t, { health_path: '/up', ssl_cert: cert, ssl_key: key })
  t.match(https.url, /^https:/)
  await t.rejects(startServer({ ...quiet, ssl_cert: join(dir, 'missing.pem'), ssl_key: key }), { name: 'ConfigError', message: /^--ssl_cert: cannot read/ })
})

t.test('Redis storage with --redis_url (one process here; two bins in bin.test.ts)', async (t) => {
  const server = await start(t, { sse: true, public_streams: true, broadcast_key: 'k', redis_url: 'redis://127.0.0.1:6379', redis_key_prefix: `rt-server-test-${process.pid}-${Date.now()}:` })
  const sse = await openEventSource(`${server.url}/events?stream=r`, t.teardown)
  t.equal((await broadcast(server, 'k', { stream: 'r', data: '"via redis"' })).status, 201)
  await waitFor(() => sse.messages.length === 1, 'the message through Redis')
  t.equal(sse.messages[0]!.data, 'via redis')
})

t.test('IPv6 host, session API with its own CORS default, stop() with the default timeout', async (t) => {
  const server = await startServer({ ...quiet, host: '::1', sessions_api: true, shutdown_timeout: 5 })
  t.equal(server.url, `http://[::1]:${server.port}`)
  const answer = await fetch(`${server.url}/sessions/abcdefghij1234567890abcdef?timeout=0`, { headers: { accept: 'application/json', origin: 'https://elsewhere.example' } })
  t.equal(answer.headers.get('access-control-allow-origin'), 'https://elsewhere.example', '@rt/sessions reflects origins (without credentials) unless --allowed_origins is set')
  await answer.text()
  t.same(await server.stop(), { forced: false })
})

t.test('a port in use fails start-up and closes what was opened', async (t) => {
  const first = await start(t, {})
  await t.rejects(startServer({ ...quiet, port: first.port }), { code: 'EADDRINUSE' })
})

t.test('JWT flags map to @rt/core\'s options', async (t) => {
  const config = (argv: string[]): ServerConfig => (resolveConfig({ argv }) as { config: ServerConfig }).config
  const server = await startServer({ ...quiet, jwt_secret: 'j' })
  t.same(await server.stop(), { forced: false }, 'starts with --jwt_secret')
  t.same(jwtOptions(config(['--jwt_secret', 'j', '--jwt_param', 'token', '--enforce_jwt'])), { jwtSecret: 'j', jwtParam: 'token', jwtForce: true })
  t.same(jwtOptions(config(['--secret', 's'])), { jwtSecret: 's', jwtParam: 'jid', jwtForce: false }, 'the JWT secret defaults to --secret, as anycable-go')
  t.same(jwtOptions(config([])), {}, 'no secret, no JWT')
  t.throws(() => jwtOptions(config(['--enforce_jwt'])), { message: '--enforce_jwt needs --jwt_secret or --secret to verify tokens' })
})

t.test('--action_cable_url serves an Action Cable server\'s channels through the bridge', async (t) => {
  const config = (argv: string[]): ServerConfig => (resolveConfig({ argv }) as { config: ServerConfig }).config
  t.same(actionCableOptions(config(['--action_cable_url', 'wss://rails.example/cable'])),
    { url: 'wss://rails.example/cable', origin: 'https://rails.example', forwardHeaders: ['cookie'] }, 'the upstream\'s own origin, cookies forwarded')
  t.same(actionCableOptions(config(['--action_cable_url', 'ws://127.0.0.1:3000/cable', '--action_cable_origin', 'http://app.test', '--action_cable_forward_headers', 'cookie, authorization'])),
    { url: 'ws://127.0.0.1:3000/cable', origin: 'http://app.test', forwardHeaders: ['cookie', 'authorization'] })
  t.throws(() => resolveConfig({ argv: ['--action_cable_url', 'http://rails/cable'] }), { message: /--action_cable_url must be a ws:\/\/ or wss:\/\/ URL, or empty/ }, 'only ws:// and wss:// URLs')

  // Nothing listens on port 1: the bridge cannot open the session's upstream socket, so the connection is refused.
  const server = await start(t, { poll: true, action_cable_url: 'ws://127.0.0.1:1/cable' })
  const response = await fetch(`${server.url}/lp`, { method: 'POST', headers: { cookie: 'user=ann' }, body: '' })
  t.equal(response.status, 401, 'an unreachable upstream refuses the client, as Action Cable\'s rejection would')
})
