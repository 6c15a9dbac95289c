import http, { type ServerResponse } from 'node:http'
import t from 'tap'
import Fastify from 'fastify'
import { rtCore, Outgoing } from '@rt/core'
import { encodeEvent, rtSessions, toIdentifierObject, toIdentifierString } from '../src/index.js'
import { SseConnection } from '../src/connection.js'
import { translate } from '../src/messages.js'
import { resolveOptions, type SessionsOptions } from '../src/options.js'
import { PollQueue } from '../src/poll-queue.js'
import { Timers } from '../src/timers.js'
import { newId, post, start } from './helpers.js'

const subscribe = [{ identifier: { channel: 'RoomChannel', room: 'p' }, subscribe: true }]

t.test('options are checked at registration, with the package name in the message', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /options must be an object/],
    [{ prefix: 'sessions' }, /prefix must be/],
    [{ prefix: 3 }, /prefix must be/],
    [{ multipleListeners: 'yes' }, /multipleListeners must be a boolean/],
    [{ idleTimeout: 0 }, /idleTimeout must be a positive number of seconds/],
    [{ idleTimeout: '30' }, /idleTimeout/],
    [{ heartbeat: -1 }, /heartbeat must be a non-negative number of seconds/],
    [{ heartbeat: Infinity }, /heartbeat/],
    [{ pollTimeout: 1.5 }, /pollTimeout must be an integer >= 0/],
    [{ maxPollTimeout: 10, pollTimeout: 20 }, /pollTimeout must not exceed maxPollTimeout/],
    [{ pollQueue: 0 }, /pollQueue must be an integer >= 1/],
    [{ maxPollQueue: 10, pollQueue: 20 }, /pollQueue must not exceed maxPollQueue/],
    [{ maxPollMessages: 0 }, /maxPollMessages/],
    [{ bodyLimit: -5 }, /bodyLimit/],
    [{ maxSessions: 0 }, /maxSessions/],
    [{ maxBufferedBytes: 'big' }, /maxBufferedBytes/],
    [{ allowedOrigins: 'example.com' }, /@rt\/sessions: allowedOrigins must be an array/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => resolveOptions(options as SessionsOptions), message, JSON.stringify(options))
    t.throws(() => resolveOptions(options as SessionsOptions), /^@rt\/sessions: /)
  }
  const defaults = resolveOptions({})
  t.same(defaults, {
    prefix: '',
    multipleListeners: false,
    idleTimeoutMs: 30_000,
    pollTimeout: 25,
    maxPollTimeout: 60,
    pollQueue: 32,
    maxPollQueue: 1024,
    maxPollMessages: 32,
    heartbeatMs: 15_000,
    bodyLimit: 65_536,
    allowedOrigins: undefined,
    maxSessions: 10_000,
    maxBufferedBytes: 1_048_576
  })
  t.match(resolveOptions({ maxPollTimeout: 10, maxPollQueue: 8 }), { pollTimeout: 10, pollQueue: 8 }, 'defaults stay within the maxima')

  const app = Fastify()
  await app.register(rtCore)
  await t.rejects(async () => { await app.register(rtSessions, { idleTimeout: -1 }).ready() }, /@rt\/sessions: idleTimeout/)
  await app.close()
})

t.test('needs @rt/core; registers once per instance', async (t) => {
  const alone = Fastify()
  await t.rejects(async () => { await alone.register(rtSessions).ready() }, /@rt\/core/)
  await alone.close()
  const app = Fastify()
  await app.register(rtCore)
  await app.register(rtSessions)
  await t.rejects(async () => { await app.register(rtSessions, { prefix: '/other' }).ready() }, /@rt\/sessions: already registered on this instance/)
  await app.close()
})

t.test("the prefix option and Fastify's prefix both place the routes", async (t) => {
  const { origin } = await start(t, {}, {}, async (app) => {
    await app.register(async (scope) => {
      await scope.register(rtSessions, { prefix: '/ac' })
    }, { prefix: '/api' })
  })
  const id = newId()
  t.equal((await post(`${origin}/api/ac/${id}`, subscribe)).status, 200)
  t.equal((await post(`${origin}/ac/${id}`, subscribe)).status, 404)
  const root = await start(t, {}, {}, async (app) => { await app.register(rtSessions) })
  t.equal((await post(`${root.origin}/${newId()}`, subscribe)).status, 200, 'at the root without a prefix')
})

t.test('concurrent first requests for one id share one session', async (t) => {
  let release: () => void = () => undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  let calls = 0
  const { base, app } = await start(t, {}, {
    authenticate: async () => {
      if (++calls === 1) await gate
      return { user: 'same' }
    }
  })
  const id = newId()
  const first = post(`${base}/${id}`, subscribe)
  while (calls < 1) await new Promise((resolve) => setImmediate(resolve))
  const second = post(`${base}/${id}`, subscribe)
  await new Promise((resolve) => setTimeout(resolve, 20))
  release()
  const [a, b] = await Promise.all([first, second])
  const answers = [a.body, b.body] as Array<Array<{ session_id: string; error?: string }>>
  t.equal(answers[0]![0]!.session_id, answers[1]![0]!.session_id, 'one background session')
  t.same(answers.map((x) => x[0]!.error), [undefined, undefined], 'the second subscribe is confirmed again (issue 21)')
  t.equal(app.rtSessions.size, 1)
})

t.test('a session created while the server shuts down is closed and answered 503', async (t) => {
  let release: () => void = () => undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  let entered = false
  const { base, app } = await start(t, {}, {
    authenticate: async () => {
      entered = true
      await gate
      return {}
    }
  })
  const pending = post(`${base}/${newId()}`, subscribe)
  while (!entered) await new Promise((resolve) => setImmediate(resolve))
  const closing = app.close()
  await new Promise((resolve) => setTimeout(resolve, 10))
  release()
  const res = await pending
  t.equal(res.status, 503)
  t.match(res.body, { message: 'the server is shutting down' })
  await closing
  t.equal(app.rtSessions.size, 0)
  t.equal(app.rtSessions.timers.count, 0)
})

t.test('a request for an expired session that was still authenticating gets a new session', async (t) => {
  let hold: Promise<void> | undefined
  const { base, app } = await start(t, { idleTimeout: 60 }, {
    authenticate: async () => {
      await hold
      return {}
    }
  })
  const id = newId()
  const created = (await post(`${base}/${id}`, subscribe)).body as Array<{ session_id: string }>
  let release: () => void = () => undefined
  hold = new Promise<void>((resolve) => { release = resolve })
  const again = post(`${base}/${id}`, subscribe)
  await new Promise((resolve) => setTimeout(resolve, 10))
  await app.rtSessions.get(id)!.close()
  hold = undefined
  release()
  const answer = (await again).body as Array<{ session_id: string; error?: string }>
  t.not(answer[0]!.session_id, created[0]!.session_id, 'a new background session')
  t.equal(answer[0]!.error, undefined, 'subscribed afresh')
})

t.test('encoder, queue, timers, identifiers and translation', async (t) => {
  t.equal(encodeEvent({ data: 'a\nb\r\nc' }), 'data: a\ndata: b\ndata: c\n\n', 'one data line per line')
  t.equal(encodeEvent({ event: 'x', data: '{}', id: '7', retry: 5 }), 'event: x\ndata: {}\nid: 7\nretry: 5\n\n')

  const queue = new PollQueue<number>(2)
  t.equal(queue.push(1), 0)
  t.equal(queue.push(2), 0)
  t.equal(queue.push(3), 1)
  t.same(queue.take(), [2, 3])
  t.equal(queue.takeDropped(), 1)
  t.equal(queue.takeDropped(), 0)
  t.equal(queue.resize(5), 0)

  const timers = new Timers()
  const timer = timers.start(() => t.fail('cleared timers do not fire'), 1)
  t.equal(timers.count, 1)
  t.equal(timers.clear(timer), undefined)
  timers.clear(timer)
  timers.clear(undefined)
  t.equal(timers.count, 0)
  // The timers are unref'd: a referenced one keeps the process up meanwhile.
  const keepAlive = setTimeout(() => undefined, 1000)
  await new Promise<void>((resolve) => timers.start(resolve, 1))
  clearTimeout(keepAlive)
  t.equal(timers.count, 0, 'a fired timer is no longer pending')

  const identifier = toIdentifierString({ room: 'x', channel: 'C', nested: { b: [1, { d: 1, c: 2 }], a: null } })
  t.equal(identifier, '{"channel":"C","nested":{"a":null,"b":[1,{"c":2,"d":1}]},"room":"x"}')
  t.same(toIdentifierObject(identifier), { channel: 'C', nested: { a: null, b: [1, { c: 2, d: 1 }] }, room: 'x' })

  t.equal(translate(new Outgoing({ type: 'welcome', sid: 's' })), undefined)
  t.equal(translate(new Outgoing({ type: 'confirm_history', identifier })), undefined)
  t.equal(translate(new Outgoing({ type: 'disconnect', reason: 'remote', reconnect: false })), undefined)
  t.match(translate(new Outgoing({ identifier, message: 1 })), { type: 'received', message: 1 }, 'a transmission has no source: now')
  t.match(translate(new Outgoing({ type: 'reject_history', identifier })), { type: 'disconnected', identifier }, 'messages may have been missed')
  t.match(translate(new Outgoing({ type: 'reject_history', identifier, message: { reason: 'upstream_disconnected' } })), { type: 'disconnected' },
    'a stream notice of a lost upstream socket')
  t.match(translate(new Outgoing({ type: 'confirm_subscription', identifier, message: { reason: 'upstream_reconnected' } })), { type: 'connected' },
    'a stream notice of a re-subscription')
  t.match(translate(new Outgoing({ type: 'custom', identifier, message: 2 }, { stream: 's', offset: 1, epoch: 'e', timestamp: 5, data: 2 })), { type: 'received', timestamp: 5 })
})

t.test('the id of a session that expired is free for anyone', async (t) => {
  const { base, app } = await start(t, { idleTimeout: 0.02 })
  const id = newId()
  t.equal((await post(`${base}/${id}`, subscribe, { cookie: 'user=a' })).status, 200)
  while (app.rtSessions.get(id) !== undefined) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal((await post(`${base}/${id}`, subscribe, { cookie: 'user=b' })).status, 200, 'bound to the new identity now')
})

t.test('a request in flight on an existing session when the server shuts down gets 503', async (t) => {
  const gate: { hold?: Promise<void> } = {}
  let entered = false
  const { base, app } = await start(t, {}, {
    authenticate: async () => {
      entered = gate.hold !== undefined
      await gate.hold
      return {}
    }
  })
  const id = newId()
  t.equal((await post(`${base}/${id}`, subscribe)).status, 200)
  let release: () => void = () => undefined
  gate.hold = new Promise<void>((resolve) => { release = resolve })
  const inFlight = post(`${base}/${id}`, subscribe)
  while (!entered) await new Promise((resolve) => setImmediate(resolve))
  const closing = app.close()
  await new Promise((resolve) => setTimeout(resolve, 10))
  release()
  const res = await inFlight
  t.equal(res.status, 503)
  await closing
})

t.test('closing twice, messages after close, and the write side of a listener', async (t) => {
  const { base, app } = await start(t)
  const id = newId()
  await post(`${base}/${id}`, subscribe)
  const session = app.rtSessions.get(id)!
  await Promise.all([session.close(), session.close()])
  t.ok(session.isClosed)
  session.send(new Outgoing({ identifier: '{"channel":"RoomChannel","room":"p"}', message: 'late' }))
  session.startPoll(0).cancel()
  t.same((await session.startPoll(0).answer)!.messages, [], 'nothing delivered after close')

  // A poll replaced by a newer one: cancelling the older is a no-op.
  const other = newId()
  await post(`${base}/${other}`, subscribe)
  const live = app.rtSessions.get(other)!
  await live.startPoll(0).answer
  const older = live.startPoll(30)
  const newer = live.startPoll(30)
  t.same((await older.answer)!.messages, [])
  older.cancel()
  t.ok(live.isPolling, 'the newer poll still waits')
  newer.cancel()
  t.equal(await newer.answer, undefined, 'a cancelled poll resolves empty-handed')
  t.notOk(live.isPolling)

  const calls: string[] = []
  const response = {
    destroyed: false,
    writableLength: 0,
    write: (chunk: string) => calls.push(`write ${chunk}`),
    end: (chunk?: string) => calls.push(`end ${String(chunk)}`),
    destroy: () => { response.destroyed = true }
  }
  const connection = new SseConnection(response as unknown as ServerResponse, 10)
  t.equal(connection.write('a'), true)
  response.writableLength = 11
  t.equal(connection.write('b'), false, 'over maxBuffered: cut off')
  t.ok(response.destroyed)
  t.equal(connection.write('c'), false, 'nothing is written to a destroyed response')
  connection.end('bye')
  t.same(calls, ['write a', 'write b'], 'ending a destroyed response is a no-op')
})

t.test('GET without an Accept header opens an event stream; a POST without a body is 400', async (t) => {
  const { base } = await start(t)
  const url = `${base}/${newId()}`
  const status = await new Promise<{ status: number; type: string | undefined }>((resolve, reject) => {
    const request = http.get(url, (response) => {
      resolve({ status: response.statusCode ?? 0, type: response.headers['content-type'] })
      request.destroy()
    })
    request.on('error', reject)
  })
  t.same(status, { status: 200, type: 'text/event-stream; charset=utf-8' })
  const empty = await fetch(url, { method: 'POST' })
  t.equal(empty.status, 400)
  t.match(await empty.json(), { message: /not valid JSON/ })
})
