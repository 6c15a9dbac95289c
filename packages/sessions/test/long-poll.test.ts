import http from 'node:http'
import t from 'tap'
import { EventStream, eventually, newId, poll, post, start } from './helpers.js'

const room = (name: string): { channel: string; room: string } => ({ channel: 'RoomChannel', room: name })

t.test('long polling: the answer shape, timeout 0 and a timeout with nothing to say', async (t) => {
  const { base, app } = await start(t)
  const id = newId()
  const url = `${base}/${id}`
  const first = await poll(`${url}?timeout=0`)
  t.equal(first.status, 200)
  t.match(first.headers.get('content-type'), /application\/json/)
  const body = first.body as { session_id: string }
  t.same(first.body, { messages: [], session_id: body.session_id, dropped: 0, queue_length: 0 })
  t.match(body.session_id, /^[\w-]{22}$/)
  t.not(body.session_id, id, 'session_id names the background session, not the URL')

  const timedOut = await poll(`${url}?timeout=1`)
  t.same(timedOut.body, { messages: [], session_id: body.session_id, dropped: 0, queue_length: 0 }, 'empty after the timeout, same background session')
  t.equal(app.rtSessions.timers.count, 1, 'only the idle timer of the session')
})

t.test('long polling: a waiting poll is answered by the first messages; messages carry no session_id', async (t) => {
  const { base } = await start(t)
  const url = `${base}/${newId()}`
  await poll(`${url}?timeout=0`, { cookie: 'user=carol' })
  const waiting = poll(`${url}?timeout=30`, { cookie: 'user=carol' })
  const res = await post(url, [{ identifier: room('lp'), subscribe: true }, { identifier: room('lp'), send: { action: 'say', text: 'hi' } }], { cookie: 'user=carol' })
  const chanId = (res.body as Array<{ chan_id: string }>)[0]!.chan_id
  const answer = (await waiting).body as { messages: Array<Record<string, unknown>>; queue_length: number }
  t.ok(answer.messages.length >= 2, 'connected and the greeting, answered together')
  t.same(answer.messages.slice(0, 2).map((m) => m.type), ['connected', 'received'])
  for (const message of answer.messages) {
    t.notOk('session_id' in message, 'omitted in long polling')
    t.equal(message.chan_id, chanId)
    t.same(message.identifier, { channel: 'RoomChannel', room: 'lp' })
  }
  const rest = answer.messages.length === 3 ? answer.messages : [...answer.messages, ...((await poll(`${url}?timeout=30`, { cookie: 'user=carol' })).body as { messages: Array<Record<string, unknown>> }).messages]
  t.same(rest[2]!.message, { user: 'carol', text: 'hi' })
  t.same(Object.keys(rest[2]!), ['type', 'chan_id', 'msg_id', 'time', 'identifier', 'message'])
})

t.test('long polling: a full queue drops the oldest and counts them until the next poll; queue_length', async (t) => {
  const { base, app } = await start(t, { maxPollMessages: 2 })
  const url = `${base}/${newId()}`
  await post(`${url}?poll-queue=3`, [{ identifier: room('q'), subscribe: true }])
  // Queued: connected, greeting (2 of 3).
  for (let i = 1; i <= 5; i++) await app.rt.publish('room_q', i)
  // 7 messages went into a queue of 3: the 4 oldest were dropped.
  const first = (await poll(`${url}?timeout=0`)).body as { messages: Array<{ message?: unknown }>; dropped: number; queue_length: number }
  t.same(first.messages.map((m) => m.message), [3, 4], 'the oldest kept messages, at most maxPollMessages of them')
  t.equal(first.dropped, 4)
  t.equal(first.queue_length, 1, 'one message left in the queue')
  const second = (await poll(`${url}?timeout=0`)).body as { messages: Array<{ message?: unknown }>; dropped: number; queue_length: number }
  t.same(second.messages.map((m) => m.message), [5])
  t.equal(second.dropped, 0, 'dropped counts since the last poll')
  t.equal(second.queue_length, 0)

  // poll-queue on a GET resizes the queue; shrinking drops (and counts) the oldest.
  for (let i = 6; i <= 8; i++) await app.rt.publish('room_q', i)
  const shrunk = (await poll(`${url}?timeout=0&poll-queue=1`)).body as { messages: Array<{ message?: unknown }>; dropped: number }
  t.same(shrunk.messages.map((m) => m.message), [8])
  t.equal(shrunk.dropped, 2)
  const metrics = await app.rt.metrics.text()
  t.match(metrics, /rt_sessions_dropped_total 6/)
  t.match(metrics, /rt_sessions_active 1/)
})

t.test('long polling: a newer poll answers the older; a client that leaves takes nothing', async (t) => {
  const { base, app } = await start(t)
  const id = newId()
  const url = `${base}/${id}`
  await post(url, [{ identifier: room('two'), subscribe: true }])
  await poll(`${url}?timeout=0`)
  const older = poll(`${url}?timeout=30`)
  await eventually(() => app.rtSessions.get(id)!.isPolling, 'the older poll to wait')
  const newer = poll(`${url}?timeout=30`)
  const olderAnswer = (await older).body as { messages: unknown[] }
  t.same(olderAnswer.messages, [], 'the replaced poll is answered at once')
  await app.rt.publish('room_two', 'for the newer')
  const newerAnswer = (await newer).body as { messages: Array<{ message: unknown }> }
  t.same(newerAnswer.messages.map((m) => m.message), ['for the newer'])

  // A poll whose client goes away: the message stays queued for the next poll.
  const request = http.get(`${url}?timeout=30`, { headers: { accept: 'application/json' } })
  request.on('error', () => undefined)
  await eventually(() => app.rtSessions.get(id)!.isPolling, 'the poll to wait')
  t.equal(app.rtSessions.timers.count, 1, 'its timer replaced the idle one')
  request.destroy()
  await eventually(() => !app.rtSessions.get(id)!.isPolling, 'the poll to be cancelled')
  t.equal(app.rtSessions.timers.count, 1, 'the idle timer is back, the poll timer gone')
  await app.rt.publish('room_two', 'kept')
  const next = (await poll(`${url}?timeout=0`)).body as { messages: Array<{ message: unknown }> }
  t.same(next.messages.map((m) => m.message), ['kept'])
})

t.test('session expiry: idle sessions close (channels unsubscribed), a new background session takes the id', async (t) => {
  const { base, app } = await start(t, { idleTimeout: 0.05 })
  const id = newId()
  const url = `${base}/${id}`
  const created = await post(url, [{ identifier: room('exp'), subscribe: true }])
  const sessionId = (created.body as Array<{ session_id: string }>)[0]!.session_id
  t.equal(app.rt.hub.listeners('room_exp'), 1)
  await eventually(() => app.rtSessions.get(id) === undefined, 'the idle session to expire')
  t.equal(app.rt.hub.listeners('room_exp'), 0, 'the hub session was closed')
  t.equal(app.rtSessions.timers.count, 0, 'no timer left behind')
  const after = (await poll(`${url}?timeout=0`)).body as { session_id: string; messages: unknown[] }
  t.not(after.session_id, sessionId, 'a changed session_id tells the client the background session restarted')
  t.same(after.messages, [])
  t.equal(app.rtSessions.timers.count, 1)
})

t.test('session expiry: a session lives while a listener is attached or a poll waits', async (t) => {
  const { base, app } = await start(t, { idleTimeout: 0.02, heartbeat: 0 })
  const id = newId()
  const url = `${base}/${id}`
  const stream = await EventStream.open(url)
  await stream.take(1)
  t.equal(app.rtSessions.timers.count, 0, 'no idle timer while a listener is attached')
  await post(url, [{ identifier: room('alive'), subscribe: true }])
  t.equal(app.rtSessions.timers.count, 0, 'a POST does not arm it either while someone listens')
  await stream.take(3)
  stream.close()
  await eventually(() => app.rtSessions.get(id) === undefined, 'expiry after the listener left')
  t.equal(app.rtSessions.timers.count, 0)

  const waiting = poll(`${url}?timeout=1`)
  await eventually(() => app.rtSessions.get(id)?.isPolling === true, 'the poll to create the session and wait')
  const answer = (await waiting).body as { messages: unknown[] }
  t.same(answer.messages, [], 'the session lived through the whole poll, longer than idleTimeout')
  await eventually(() => app.rtSessions.get(id) === undefined, 'expiry after the answer')
  t.equal(app.rtSessions.timers.count, 0)
})

t.test('query parameters are validated: 400 with a reason', async (t) => {
  const { base } = await start(t, { maxPollTimeout: 30, maxPollQueue: 100 })
  const url = `${base}/${newId()}`
  const cases: Array<[string, RegExp]> = [
    ['timeout=abc', /"timeout" must be a whole number of seconds from 0 to 30/],
    ['timeout=1.5', /"timeout"/],
    ['timeout=-1', /"timeout"/],
    ['timeout=31', /"timeout"/],
    ['timeout=', /"timeout"/],
    ['timeout=1&timeout=2', /"timeout"/],
    ['poll-queue=0', /"poll-queue" must be a whole number from 1 to 100/],
    ['poll-queue=101', /"poll-queue"/],
    ['poll-queue=x', /"poll-queue"/]
  ]
  for (const [query, reason] of cases) {
    const res = await fetch(`${url}?${query}`, { headers: { accept: 'application/json' } })
    t.equal(res.status, 400, query)
    t.match(((await res.json()) as { message: string }).message, reason, query)
  }
  const onPost = await post(`${url}?poll-queue=0`, [{ identifier: room('x'), subscribe: true }])
  t.equal(onPost.status, 400, 'POST validates poll-queue too')
  const sse = await EventStream.open(`${url}?poll-queue=0`)
  t.equal(sse.status, 400, 'and GET for an event stream')
})
