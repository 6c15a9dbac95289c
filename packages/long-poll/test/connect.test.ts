import { rtCore, type Channel } from '@rt/core'
import Fastify from 'fastify'
import t from 'tap'
import { rtLongPoll } from '../src/index.js'
import { FAST, connectTo, payloads, poll, post, pubsub, serve, subscribe, types } from './helpers.js'

t.test('connect without commands: 200, the poll id, and a welcome carrying it', async (t) => {
  const { url } = await serve(t)
  const response = await post(url)
  t.equal(response.status, 200)
  t.match(response.headers.get('content-type'), /^application\/x-ndjson/)
  t.match(response.pollId, /^[A-Za-z0-9_-]{22}$/, '128 random bits')
  t.same(response.lines, [{ type: 'welcome', sid: response.pollId }])
  t.ok(response.text.endsWith('\n'), 'every line ends with a newline')
})

t.test('connect with commands answers their results with the welcome', async (t) => {
  const { url } = await serve(t)
  const response = await post(url, `${subscribe(pubsub('a'))}\n${subscribe(pubsub('b'))}\n`)
  t.same(types(response.lines), ['welcome', 'confirm_subscription', 'confirm_subscription'])
  t.same(response.lines.slice(1).map((line) => line.identifier), [pubsub('a'), pubsub('b')])
})

t.test('failed authentication: 401 with an unauthorized disconnect, no session', async (t) => {
  const { app, url } = await serve(t, FAST, {
    authenticate: (request) => request.headers.cookie === 'user=ann' ? { user: 'ann' } : false
  })
  const refused = await post(url, subscribe(pubsub('a')))
  t.equal(refused.status, 401)
  t.equal(refused.pollId, null)
  t.same(refused.lines, [{ type: 'disconnect', reason: 'unauthorized', reconnect: false }])
  t.equal(app.rt.hub.listeners('a'), 0, 'commands are not run without authentication')
  const accepted = await post(url, undefined, { cookie: 'user=ann' })
  t.equal(accepted.status, 200)
})

t.test('the identity reaches channels, subscriptions are confirmed or rejected', async (t) => {
  const Room: Channel = {
    subscribed (ctx) {
      if (ctx.params.id === 'secret') return ctx.reject()
      ctx.streamFrom(`room_${String(ctx.params.id)}`)
      ctx.transmit({ hello: ctx.identity.user })
    }
  }
  const { url } = await serve(t, FAST, { channels: { Room }, authenticate: (request) => ({ user: request.headers['x-user'] }) })
  const ok = JSON.stringify({ channel: 'Room', id: 1 })
  const secret = JSON.stringify({ channel: 'Room', id: 'secret' })
  const response = await post(url, `${subscribe(ok)}\n${subscribe(secret)}\n${subscribe(JSON.stringify({ channel: 'Nope' }))}`, { 'x-user': 'ann' })
  t.same(response.lines.slice(1), [
    { type: 'confirm_subscription', identifier: ok },
    { identifier: ok, message: { hello: 'ann' } },
    { type: 'reject_subscription', identifier: secret },
    { type: 'reject_subscription', identifier: JSON.stringify({ channel: 'Nope' }) }
  ])
})

t.test('history: a subscribe with history gets the backlog, then confirm_history', async (t) => {
  const { app, url } = await serve(t)
  await app.rt.publish('news', { n: 1 })
  await app.rt.publish('news', { n: 2 })
  const response = await post(url, subscribe(pubsub('news'), { history: { since: Math.floor(Date.now() / 1000) - 60 } }))
  t.same(types(response.lines), ['welcome', 'confirm_subscription', 'data', 'data', 'confirm_history'])
  t.same(payloads(response.lines), [{ n: 1 }, { n: 2 }])
  const id = response.pollId!
  const position = response.lines[2] as { offset: number; epoch: string }
  const again = await poll(url, id, JSON.stringify({ command: 'history', identifier: pubsub('news'), history: { streams: { news: { offset: position.offset, epoch: position.epoch } } } }))
  t.same(types(again.lines), ['data', 'confirm_history'])
  t.same(payloads(again.lines), [{ n: 2 }])
  const rejected = await poll(url, id, JSON.stringify({ command: 'history', identifier: pubsub('news'), history: { streams: { news: { offset: 1, epoch: 'gone' } } } }))
  t.same(rejected.lines, [{ type: 'reject_history', identifier: pubsub('news') }])
})

t.test('restore by ?sid= or X-AnyCable-Restore-SID: restored subscriptions, a new sid', async (t) => {
  const { app, url } = await serve(t)
  const first = await connectTo(url, ['r'])
  const byQuery = await post(`${url}?sid=${first.id}`)
  t.equal(byQuery.status, 200)
  t.not(byQuery.pollId, first.id, 'a new sid')
  t.same(byQuery.lines, [{ type: 'welcome', sid: byQuery.pollId, restored: true, restored_ids: [pubsub('r')] }])
  const byHeader = await post(url, undefined, { 'x-anycable-restore-sid': byQuery.pollId! })
  t.same(byHeader.lines[0]?.restored_ids, [pubsub('r')])
  t.equal((await poll(url, first.id)).status, 401, 'the restored-away id is gone')
  // Published after the restore: it follows the history the client asks for (issue 21).
  await app.rt.publish('r', 'after restore')
  const next = await poll(url, byHeader.pollId!, JSON.stringify({ command: 'history', identifier: pubsub('r'), history: { since: 1 } }))
  t.same(payloads(next.lines), ['after restore'])
  t.ok(next.lines.some((line) => line.type === 'confirm_history'))
  const unknown = await post(`${url}?sid=nope`)
  t.same(unknown.lines, [{ type: 'welcome', sid: unknown.pollId }], 'an unknown sid connects afresh')
})

t.test('CORS: off by default; X-Anycable-Poll-ID exposed and allowed in preflight, origins as AnyCable', async (t) => {
  const none = await serve(t)
  const plain = await post(none.url, undefined, { origin: 'https://app.example' })
  t.equal(plain.headers.get('access-control-allow-origin'), null, 'CORS is off by default')
  t.equal(plain.status, 403, 'and another site cannot connect with the visitor\'s cookies (a simple POST needs no preflight)')
  const open = await serve(t, { ...FAST, allowedOrigins: ['*'] })
  const preflight = await fetch(open.url, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-anycable-poll-id' } })
  t.equal(preflight.status, 204)
  t.equal(preflight.headers.get('access-control-allow-origin'), '*')
  t.match(preflight.headers.get('access-control-allow-headers'), /X-Anycable-Poll-ID/)
  t.match(preflight.headers.get('access-control-allow-methods'), /POST/)
  const connect = await post(open.url, undefined, { origin: 'https://app.example' })
  t.equal(connect.headers.get('access-control-expose-headers'), 'X-Anycable-Poll-ID')

  const closed = await serve(t, { ...FAST, allowedOrigins: ['*.example.com'] })
  const allowed = await post(closed.url, undefined, { origin: 'https://app.example.com' })
  t.equal(allowed.headers.get('access-control-allow-origin'), 'https://app.example.com')
  t.equal(allowed.headers.get('access-control-allow-credentials'), 'true')
  const other = await post(closed.url, undefined, { origin: 'https://evil.test' })
  t.equal(other.headers.get('access-control-allow-origin'), null)
  t.equal(other.status, 403)
})

t.test('options are checked at registration', async (t) => {
  const register = async (options: object) => {
    const app = Fastify()
    await app.register(rtCore)
    await app.register(rtLongPoll, options)
    await app.ready()
    await app.close()
  }
  await t.rejects(register({ path: 'lp' }), /@rt\/long-poll: path/)
  await t.rejects(register({ path: '/lp/:id' }), /@rt\/long-poll: path/)
  await t.rejects(register({ pollInterval: 0 }), /@rt\/long-poll: pollInterval must be a positive number of seconds/)
  await t.rejects(register({ keepaliveTimeout: 'x' }), /@rt\/long-poll: keepaliveTimeout/)
  await t.rejects(register({ flushInterval: -1 }), /@rt\/long-poll: flushInterval must be a non-negative/)
  await t.rejects(register({ maxRequestSize: 1.5 }), /@rt\/long-poll: maxRequestSize/)
  await t.rejects(register({ maxAnswerSize: 0 }), /@rt\/long-poll: maxAnswerSize must be a positive integer/)
  await t.rejects(register({ allowedOrigins: 'x' }), /@rt\/long-poll: allowedOrigins/)
  await register({ flushInterval: 0, path: '/poll' })
  const alone = Fastify()
  await t.rejects(async () => {
    await alone.register(rtLongPoll)
    await alone.ready()
  }, /@rt\/core/, 'needs @rt/core')
})
