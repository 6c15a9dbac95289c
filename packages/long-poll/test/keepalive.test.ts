import { MemoryBroker, MemorySessionStore, rtCore, type Channel } from '@rt/core'
import { testFastify } from '@rt/core/testing'
import Fastify from 'fastify'
import t from 'tap'
import { rtLongPoll } from '../src/index.js'
import { resolveOptions } from '../src/options.js'
import { LongPollSessions } from '../src/sessions.js'
import { FAST, connectTo, payloads, poll, post, serve, subscribe, until } from './helpers.js'

const metric = async (app: { rt: { metrics: { text(): Promise<string> } } }, name: string): Promise<number> => {
  const line = (await app.rt.metrics.text()).split('\n').find((l) => l.startsWith(`${name} `))
  return Number(line?.split(' ')[1])
}

function tracked(): { Room: Channel; left: string[] } {
  const left: string[] = []
  const Room: Channel = {
    subscribed: (ctx) => ctx.streamFrom(`room_${String(ctx.params.id)}`),
    unsubscribed: (ctx) => { left.push(ctx.sid) }
  }
  return { Room, left }
}

t.test('a session not polled for keepaliveTimeout expires: unsubscribed runs, next poll 401 session_expired', async (t) => {
  const { Room, left } = tracked()
  const { app, url } = await serve(t, { ...FAST, keepaliveTimeout: 0.1 }, { channels: { Room } })
  const identifier = JSON.stringify({ channel: 'Room', id: 1 })
  const connected = await post(url, subscribe(identifier))
  const id = connected.pollId!
  t.equal(await metric(app, 'long_poll_clients_num'), 1)
  await until(() => left.length === 1, 'the session to expire')
  t.same(left, [id], "the channel's unsubscribed callback ran")
  t.equal(await metric(app, 'long_poll_clients_num'), 0)
  const stale = await poll(url, id)
  t.equal(stale.status, 401)
  t.same(stale.lines, [{ type: 'disconnect', reason: 'session_expired', reconnect: true }])
  t.equal(await metric(app, 'long_poll_stale_requests_total'), 1)
  const unknown = await poll(url, 'no-such-session')
  t.equal(unknown.status, 401)
  t.equal(unknown.text, '')
  t.equal(await metric(app, 'long_poll_stale_requests_total'), 2, 'unknown ids count as stale too')

  // Restorable by sid for sessionsTtl.
  const restored = await post(`${url}?sid=${id}`)
  t.same(restored.lines, [{ type: 'welcome', sid: restored.pollId, restored: true, restored_ids: [identifier] }])
  // Published after the restore: it follows the history its client asks for (issue 21).
  await app.rt.publish('room_1', 'welcome back')
  const next = await poll(url, restored.pollId!, JSON.stringify({ command: 'history', identifier, history: { since: 1 } }))
  t.same(payloads(next.lines), ['welcome back'], 'once: in the backlog or right after it')
  t.ok(next.lines.some((line) => line.type === 'confirm_history'))
})

t.test('a poll held longer than keepaliveTimeout keeps its session alive', async (t) => {
  const { Room, left } = tracked()
  const { url } = await serve(t, { pollInterval: 0.3, flushInterval: 10, keepaliveTimeout: 0.1 }, { channels: { Room } })
  const { id } = await connectTo(url)
  const answer = await poll(url, id, subscribe(JSON.stringify({ channel: 'Room', id: 2 })))
  t.equal(answer.status, 200)
  t.equal((await poll(url, id)).status, 200, 'held past keepalive twice over, still alive')
  t.same(left, [])
})

t.test('a session whose process went away is expired by the next poll on another one', async (t) => {
  const broker = new MemoryBroker()
  const store = new MemorySessionStore()
  t.teardown(async () => {
    await store.close()
    await broker.close()
  })
  const { Room, left } = tracked()
  const start = async () => {
    const app = testFastify({ forceCloseConnections: true })
    await app.register(rtCore, { broker, sessionStore: store, channels: { Room } })
    await app.register(rtLongPoll, { ...FAST, keepaliveTimeout: 0.1 })
    return { app, url: `${await app.listen({ port: 0, host: '127.0.0.1' })}/lp` }
  }
  const a = await start()
  const b = await start()
  t.teardown(() => b.app.close())
  const connected = await post(a.url, subscribe(JSON.stringify({ channel: 'Room', id: 3 })))
  await a.app.close()
  const before = Date.now()
  await until(() => Date.now() - before > 150, 'keepalive to run out')
  const stale = await poll(b.url, connected.pollId!)
  t.equal(stale.status, 401)
  t.same(stale.lines, [{ type: 'disconnect', reason: 'session_expired', reconnect: true }])
  t.same(left, [connected.pollId], 'the subscriptions were released')
  t.equal((await poll(b.url, connected.pollId!)).status, 401, 'and it stays expired')
  t.same(left, [connected.pollId], 'released once')
})

t.test('a session answered elsewhere since is left to that process', async (t) => {
  const broker = new MemoryBroker()
  const store = new MemorySessionStore()
  t.teardown(async () => {
    await store.close()
    await broker.close()
  })
  const start = async (keepaliveTimeout: number) => {
    const app = testFastify({ forceCloseConnections: true })
    await app.register(rtCore, { broker, sessionStore: store, publicStreams: true })
    await app.register(rtLongPoll, { ...FAST, keepaliveTimeout })
    t.teardown(() => app.close())
    return { app, url: `${await app.listen({ port: 0, host: '127.0.0.1' })}/lp` }
  }
  const a = await start(0.05)
  const b = await start(60)
  // Connection to B set up first (a TLS handshake over HTTP/2): A's 50 ms keepalive must not run out during it.
  await (await fetch(b.url.replace(/\/lp$/, '/warm-up'))).text()
  const { id } = await connectTo(a.url, ['x'])
  t.equal(await metric(a.app, 'long_poll_clients_num'), 1)
  await poll(b.url, id, JSON.stringify({ command: 'pong' }))
  await until(async () => (await metric(a.app, 'long_poll_clients_num')) === 0, 'A to let go of the session')
  t.equal(await metric(b.app, 'long_poll_clients_num'), 1)
  t.equal((await poll(b.url, id, JSON.stringify({ command: 'pong' }))).status, 200, 'still alive on B')
})

t.test('two processes expiring one session at the same moment run unsubscribed once', async (t) => {
  const { Room, left } = tracked()
  const broker = new MemoryBroker()
  const store = new MemorySessionStore()
  t.teardown(async () => {
    await store.close()
    await broker.close()
  })
  const expirers: LongPollSessions[] = []
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    await app.register(rtCore, { broker, sessionStore: store, channels: { Room } })
    await app.ready()
    t.teardown(() => app.close())
    expirers.push(new LongPollSessions(app.rt.hub, resolveOptions(FAST), app.rt.metrics, app.log))
  }
  const { app, url } = await serve(t, FAST, { broker, sessionStore: store, channels: { Room } })
  t.ok(app)
  const ids: string[] = []
  for (let round = 0; round < 5; round++) {
    const id = (await post(url, subscribe(JSON.stringify({ channel: 'Room', id: 1 })))).pollId!
    ids.push(id)
    // Both processes read the session at the same lease, then both expire it.
    const seen = await store.get(id)
    await Promise.all(expirers.map((sessions) => sessions.expire(seen!)))
    t.same(left, ids, `round ${round}: unsubscribed ran once`)
    const stale = await poll(url, id)
    t.same(stale.lines, [{ type: 'disconnect', reason: 'session_expired', reconnect: true }])
  }
})

t.test('a sweep whose store read fails logs it and expires the session on a later sweep', async (t) => {
  let down = false
  /** A memory store whose reads can fail, as a Redis that went away for a moment. */
  class FlakyReads extends MemorySessionStore {
    override get(sid: string) {
      return down ? Promise.reject(new Error('session get: Redis is unreachable')) : super.get(sid)
    }
  }
  const store = new FlakyReads()
  t.teardown(() => store.close())
  const { app, url } = await serve(t, FAST, { sessionStore: store })
  const { id } = await connectTo(url, ['room'])
  // Its keepalive ran out (as if the process had answered it long ago), and this sweeper answered it last.
  const state = (await store.get(id))!
  const expiresAt = Date.now() - 1
  t.ok(await store.save({ ...state, transport: { ...state.transport, expiresAt } }, 60_000))
  const errors: string[] = []
  const log = { ...app.log, error: (_obj: unknown, msg: string) => void errors.push(msg) } as unknown as typeof app.log
  const sweeper = new LongPollSessions(app.rt.hub, resolveOptions(FAST), app.rt.metrics, log)
  t.teardown(() => sweeper.close())
  sweeper.begin(id)
  sweeper.end(id, expiresAt)
  down = true
  await sweeper.sweep()
  t.same(errors, ['@rt/long-poll: expiring a session failed'], 'the failure is logged')
  down = false
  await sweeper.sweep()
  const stale = await poll(url, id)
  t.same(stale.lines, [{ type: 'disconnect', reason: 'session_expired', reconnect: true }], 'the later sweep expired it')
})
