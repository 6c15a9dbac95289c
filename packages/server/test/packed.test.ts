/**
 * The "done" check: `npx @rt/server --sse --poll --public_streams --broadcast_key k`, installed from packed
 * tarballs in a scratch folder (as a user gets it from the registry), serves AnyCable's SSE and long-poll clients, and
 * a golongpoll-style client (the Go wrapper's `Subscription`/`Publish`) works against `--category_poll`.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { BinProcess, openEventSource, waitFor } from './helpers.js'

const exec = promisify(execFile)
const packages = fileURLToPath(new URL('../..', import.meta.url))
/** @rt/server and the workspace packages it depends on. */
const PACKED = ['core', 'sse', 'long-poll', 'category-poll', 'sessions', 'redis', 'action-cable', 'server']

t.test('npx @rt/server from the packed tarballs serves AnyCable and golongpoll clients', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'rt-server-packed-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
  const tarballs = join(scratch, 'tarballs')
  for (const name of PACKED) {
    // pnpm rewrites workspace:^ to the packages' versions, as `pnpm publish` does.
    await exec('npx', ['-y', 'pnpm@10.34.9', 'pack', '--pack-destination', tarballs], { cwd: join(packages, name) })
  }
  const app = join(scratch, 'app')
  await exec('mkdir', ['-p', app])
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }))
  const files = readdirSync(tarballs).map((file) => join(tarballs, file))
  t.equal(files.length, PACKED.length, 'one tarball per package')
  await exec('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files], { cwd: app, timeout: 240_000 })

  const child = spawn('npx', ['@rt/server', '--sse', '--poll', '--public_streams', '--broadcast_key', 'k', '--category_poll',
    '--port', '0', '--host', '127.0.0.1', '--poll_flush_interval', '0'], { cwd: app, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const bin = new BinProcess(child)
  // npx runs rt-server as its child: signal the whole process group, as a terminal or a supervisor does.
  const terminate = (): void => {
    if (bin.exit === undefined) process.kill(-child.pid!, 'SIGTERM')
  }
  t.teardown(terminate)
  const url = await bin.url()

  // AnyCable's SSE client: the browser's EventSource on /events.
  const { data: sse } = await openEventSource(`${url}/events?stream=done`, t.teardown)

  // AnyCable's long-poll client (@anycable/long-polling): connect with an empty POST, then poll with the poll id and
  // the buffered commands joined by "\n" without a trailing newline.
  const connect = await fetch(`${url}/lp`, { method: 'POST' })
  t.equal(connect.status, 200)
  const pollId = connect.headers.get('x-anycable-poll-id')
  t.ok(pollId, 'X-Anycable-Poll-ID')
  t.match(await connect.text(), /^\{"type":"welcome"/)
  const subscribe = JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'done' }) })
  const confirm = await fetch(`${url}/lp`, { method: 'POST', headers: { 'x-anycable-poll-id': pollId! }, body: subscribe })
  t.match(await confirm.text(), /"type":"confirm_subscription"/)
  const held = fetch(`${url}/lp`, { method: 'POST', headers: { 'x-anycable-poll-id': pollId! } })

  // The golongpoll wrapper's client: Subscription (GET ?category&timeout&since_time) and Publish (POST {category, data}).
  const since = Date.now() - 1000
  const subscription = fetch(`${url}/category/events?category=done&timeout=30&since_time=${since}`)
  const published = await fetch(`${url}/category/publish`, {
    method: 'POST', headers: { authorization: 'Bearer k', 'content-type': 'application/json' }, body: JSON.stringify({ category: 'done', data: 'from golongpoll' })
  })
  t.same(await published.json(), { success: true })
  const events = await (await subscription).json() as { events: Array<{ category: string; data: unknown; id: string; timestamp: number }> }
  t.match(events.events, [{ category: 'done', data: 'from golongpoll', id: /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-0{11}1$/ }])

  const broadcast = await fetch(`${url}/_broadcast`, { method: 'POST', headers: { authorization: 'Bearer k' }, body: JSON.stringify({ stream: 'done', data: '{"via":"broadcast"}' }) })
  t.equal(broadcast.status, 201)
  await waitFor(() => sse.length === 2, 'both messages over SSE')
  t.same(sse, ['from golongpoll', '{"via":"broadcast"}'])
  const polled = (await (await held).text()).split('\n').filter(Boolean).map((line) => JSON.parse(line) as { message?: unknown })
  t.equal(polled.map((frame) => frame.message)[0], 'from golongpoll', 'the held poll answers with the message')

  terminate()
  await bin.exited()
  await waitFor(() => bin.messages.includes('stopped'), 'rt-server to log that it stopped')
  t.notMatch(bin.stderr, /still running after stop/, 'rt-server stopped cleanly on SIGTERM')
})
