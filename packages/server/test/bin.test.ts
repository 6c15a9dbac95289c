import { execFile } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { resolveConfig, type ConfigError } from '../src/config.js'
import { runCli, stopOnSignals, version } from '../src/cli.js'
import { helpText } from '../src/help.js'
import { describeEndpoint, startServer } from '../src/server.js'
import type { ServerConfig } from '../src/schema.js'
import { BIN, openEventSource, startBin, waitFor } from './helpers.js'

const run = promisify(execFile)

/** Runs the bin to its end; resolves with its exit code and output (never rejects on a non-zero exit). */
async function runBin(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

/** Checks that SSE, AnyCable long polling, category polling and /_broadcast answer where `paths` says. */
async function checkTransports(t: Test, url: string, paths: { sse: string; poll: string; category: string; broadcast: string }, key: string): Promise<void> {
  const { data: messages } = await openEventSource(`${url}${paths.sse}?stream=feed`, t.teardown)

  const connect = await fetch(`${url}${paths.poll}`, {
    method: 'POST',
    body: JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'feed' }) })
  })
  t.equal(connect.status, 200, 'long polling connects')
  const pollId = connect.headers.get('x-anycable-poll-id')!
  t.match(await connect.text(), /confirm_subscription/)
  const poll = fetch(`${url}${paths.poll}`, { method: 'POST', headers: { 'x-anycable-poll-id': pollId } })
  const since = Date.now() - 1000

  const published = await fetch(`${url}${paths.broadcast}`, {
    method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify({ stream: 'feed', data: JSON.stringify({ hello: 'bin' }) })
  })
  t.equal(published.status, 201, 'the broadcast is accepted')
  await waitFor(() => messages.length === 1, 'the SSE message')
  t.same(JSON.parse(messages[0]!), { hello: 'bin' })
  t.match(await (await poll).text(), /"message":\{"hello":"bin"\}/, 'the held poll gets it')
  const category = await (await fetch(`${url}${paths.category}?category=feed&timeout=5&since_time=${since}`)).json() as { events: Array<{ data: unknown }> }
  // AnyCable's data is a JSON string; category clients get it as published (@rt/category-poll's broadcastData default).
  t.same(category.events.map((event) => event.data), ['{"hello":"bin"}'], 'category polling sees it')
}

t.test('the bin, configured with flags, serves every transport on the configured paths', async (t) => {
  const bin = startBin(['--host', '127.0.0.1', '--port=0', '--sse', '--sse_path', '/stream', '--poll', '--poll_path=/long', '--poll_flush_interval=0',
    '--category_poll', '--category_subscribe_path', '/golp', '--public_streams', '--broadcast_key', 'k', '--http_broadcast_path', '/pub'], {}, t.teardown)
  const url = await bin.url()
  await checkTransports(t, url, { sse: '/stream', poll: '/long', category: '/golp', broadcast: '/pub' }, 'k')
  t.ok(bin.messages.includes(`Handle SSE requests at ${url}/stream`), 'start-up logs the SSE endpoint')
  t.ok(bin.messages.includes(`Handle long polling requests at ${url}/long (poll_interval: 15, keepalive_timeout: 5)`), 'and long polling, as anycable-go words it')
})

t.test('the bin, configured with ANYCABLE_* environment variables', async (t) => {
  const bin = startBin([], {
    ANYCABLE_HOST: '127.0.0.1', PORT: '0', ANYCABLE_SSE: 'true', ANYCABLE_SSE_PATH: '/env-sse', ANYCABLE_POLL: 'true', ANYCABLE_POLL_PATH: '/env-lp',
    ANYCABLE_POLL_FLUSH_INTERVAL: '0', ANYCABLE_CATEGORY_POLL: 'true', ANYCABLE_CATEGORY_SUBSCRIBE_PATH: '/env-cat', ANYCABLE_PUBLIC_STREAMS: '1',
    ANYCABLE_SECRET: 'env-secret', ANYCABLE_HTTP_BROADCAST_PATH: '/env-bc'
  }, t.teardown)
  const url = await bin.url()
  const { deriveBroadcastKey } = await import('@rt/core')
  await checkTransports(t, url, { sse: '/env-sse', poll: '/env-lp', category: '/env-cat', broadcast: '/env-bc' }, deriveBroadcastKey('env-secret'))
})

t.test('bad flags exit non-zero with a message naming the flag', async (t) => {
  const cases: Array<[string[], Record<string, string>, string]> = [
    [['--sse', '--bogus'], {}, 'rt-server: unknown flag --bogus (rt-server --help lists every flag)\n'],
    [['--port', 'http'], {}, 'rt-server: --port must be an integer, got "http"\n'],
    [[], { ANYCABLE_POLL_INTERVAL: '-3' }, 'rt-server: ANYCABLE_POLL_INTERVAL (--poll_interval) must be an integer >= 1, got -3\n'],
    [['--rpc_host', 'localhost:50051'], {}, /^rt-server: --rpc_host is not supported by rt-server: rt-server has no RPC/],
    [['--enforce_jwt'], {}, 'rt-server: --enforce_jwt needs --jwt_secret or --secret to verify tokens\n']
  ].map(([args, env, expected]) => [args, env, expected] as [string[], Record<string, string>, string])
  for (const [args, env, expected] of cases) {
    const result = await runBin(args, env)
    t.equal(result.code, 1, `${args.join(' ')} exits 1`)
    if (typeof expected === 'string') t.equal(result.stderr, expected)
    else t.match(result.stderr, expected)
    t.equal(result.stdout, '', 'and does not start')
  }
})

t.test('--help and --version', async (t) => {
  const help = await runBin(['--help'])
  t.equal(help.code, 0)
  t.equal(help.stdout, helpText())
  const shown = await runBin(['-v'])
  t.equal(shown.stdout, `${version()}\n`)
  t.match(version(), /^\d+\.\d+\.\d+/)
})

t.test('SIGTERM: a held poll and an SSE client are answered, the process ends by itself with status 0', async (t) => {
  const bin = startBin(['--host', '127.0.0.1', '--port', '0', '--sse', '--poll', '--public_streams', '--poll_interval', '60'], {}, t.teardown)
  const url = await bin.url()
  const sse = await openEventSource(`${url}/events?stream=s`, t.teardown)
  const connect = await fetch(`${url}/lp`, { method: 'POST' })
  await connect.text()
  const held = fetch(`${url}/lp`, { method: 'POST', headers: { 'x-anycable-poll-id': connect.headers.get('x-anycable-poll-id')! } })
  await new Promise((resolve) => setTimeout(resolve, 100))

  const exit = await bin.stop()
  t.same(exit, { code: 0, signal: null }, 'exit status 0, not killed by the signal')
  t.equal((await held).status, 200, 'the held poll was answered')
  await waitFor(() => sse.disconnect !== undefined, 'the disconnect event')
  t.same(JSON.parse(sse.disconnect!), { type: 'disconnect', reason: 'server_restart', reconnect: true })
  t.ok(bin.messages.includes('stopped'))
  t.notMatch(bin.stderr, /still running after stop/, 'no handle outlived stop()')
})

t.test('the bin and startServer() share one code path', async (t) => {
  const argv = ['--host', '127.0.0.1', '--port', '0', '--sse', '--poll', '--category_poll', '--sessions_api', '--metrics_http', '/metrics', '--broadcast_key', 'k']
  const bin = startBin(argv, {}, t.teardown)
  const binUrl = await bin.url()
  const config = (resolveConfig({ argv }) as { config: ServerConfig }).config
  const server = await startServer({ ...config, log_level: 'silent' })
  t.teardown(() => server.stop())
  const lines = (url: string, messages: string[]): string[] =>
    messages.filter((m) => m.includes(url) && !m.includes('listening at')).map((m) => m.replace(url, '<url>'))
  t.same(lines(binUrl, bin.messages), server.endpoints.map((endpoint) => describeEndpoint(endpoint, '<url>')), 'the same endpoints, in the same order')
  const bad = await runBin(['--history_ttl', '0'])
  let programmatic: string | undefined
  try {
    resolveConfig({ argv: ['--history_ttl', '0'] })
  } catch (error) {
    programmatic = (error as ConfigError).message
  }
  t.equal(bad.stderr, `rt-server: ${programmatic}\n`, 'the same validation')
})

t.test('runCli and stopOnSignals in process', async (t) => {
  const output = { stdout: '', stderr: '' }
  const io = { stdout: { write: (text: string) => { output.stdout += text } }, stderr: { write: (text: string) => { output.stderr += text } } }
  t.same(await runCli(['--help'], {}, io), { exitCode: 0 })
  t.equal(output.stdout, helpText())
  t.same(await runCli(['--version'], {}, io), { exitCode: 0 })
  t.same(await runCli(['--nope'], {}, io), { exitCode: 1 })
  t.match(output.stderr, 'rt-server: unknown flag --nope')
  t.same(await runCli(['--port', '1', '--host', '256.256.256.256', '--log_level', 'silent'], {}, io), { exitCode: 1 })
  t.match(output.stderr, /rt-server: cannot start: /, 'a listen error is reported, not thrown')

  const started = await runCli(['--host', '127.0.0.1', '--port', '0', '--sse', '--log_level', 'silent'], {}, io)
  t.ok('server' in started)
  const { server } = started as { server: Awaited<ReturnType<typeof startServer>> }
  const signals = new EventEmitter()
  let exitCode: number | undefined
  const remove = stopOnSignals(server, (code) => { exitCode = code }, signals)
  signals.emit('SIGTERM', 'SIGTERM')
  await waitFor(() => exitCode !== undefined, 'the server to stop')
  t.equal(exitCode, 0)
  remove()
  t.equal(signals.listenerCount('SIGINT'), 0, 'the handlers are removed')

  const stuck = await startServer({ host: '127.0.0.1', port: 0, log_level: 'silent', shutdown_timeout: 0, broadcast_key: 'k' })
  const socket = (await import('node:net')).connect(stuck.port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.on('error', () => {})
  socket.write('POST /_broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{')
  await new Promise((resolve) => setTimeout(resolve, 50))
  let forcedCode: number | undefined
  stopOnSignals(stuck, (code) => { forcedCode = code }, signals)
  signals.emit('SIGINT', 'SIGINT')
  await waitFor(() => forcedCode !== undefined, 'the forced stop')
  t.equal(forcedCode, 1, 'cut connections end with status 1')
})
