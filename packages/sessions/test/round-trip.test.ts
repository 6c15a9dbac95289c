import t from 'tap'
import { EventStream, eventually, newId, post, start, unsubscribedCalls } from './helpers.js'

const room = (name: string): { channel: string; room: string } => ({ channel: 'RoomChannel', room: name })
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

t.test('EventSource: joined, then subscribe / send / unsubscribe through the demo channel', async (t) => {
  const { base, app } = await start(t)
  const id = newId()
  const url = `${base}/${id}`
  const stream = await EventStream.open(url, { cookie: 'user=alice' })
  t.equal(stream.status, 200)
  t.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.match(stream.headers['cache-control'], /no-cache/)
  t.match(stream.headers['cache-control'], /no-transform/)
  t.equal(stream.headers['x-accel-buffering'], 'no')
  const [joined] = await stream.take(1)
  t.same(joined!.json, { type: 'joined', id }, 'joined names the session of the URL')
  t.equal(joined!.event, 'message')

  // Subscribe (identifier keys in any order), then send, in one POST.
  const res = await post(url, [
    { identifier: { room: 'lobby', channel: 'RoomChannel' }, subscribe: true },
    { identifier: room('lobby'), send: { action: 'say', text: 'hello' } }
  ], { cookie: 'user=alice' })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /application\/json/)
  const responses = res.body as Array<Record<string, unknown>>
  t.equal(responses.length, 2)
  const sessionId = responses[0]!.session_id as string
  const chanId = responses[0]!.chan_id as string
  t.match(sessionId, /^[\w-]{22}$/)
  t.match(chanId, /^[\w-]{16}$/)
  t.same(responses, [{ session_id: sessionId, chan_id: chanId }, { session_id: sessionId, chan_id: chanId }], 'no error, one chan_id per identifier')

  const events = (await stream.take(4)).slice(1)
  const base_ = { session_id: sessionId, chan_id: chanId, identifier: { channel: 'RoomChannel', room: 'lobby' } }
  t.match(events.map((e) => e.json), [
    { type: 'connected', ...base_ },
    { type: 'received', ...base_, message: { greeting: 'welcome to lobby' } },
    { type: 'received', ...base_, message: { user: 'alice', text: 'hello' } }
  ])
  t.notOk('message' in events[0]!.json, 'connected carries no message')
  const msgIds = events.map((e) => e.json.msg_id)
  t.equal(new Set(msgIds).size, 3, 'msg_id is unique')
  t.same(events.map((e) => e.id), msgIds, 'the SSE id is the msg_id')
  for (const event of events) t.match(event.json.time, ISO_TIME)
  const stored = (await app.rt.broker.history('room_lobby', { since: 0 })).messages[0]!
  t.equal(events[2]!.json.time, new Date(stored.timestamp).toISOString(), 'a broadcast carries its publication time')
  t.same(Object.keys(events[2]!.json), ['type', 'session_id', 'chan_id', 'msg_id', 'time', 'identifier', 'message'])

  // A broadcast from elsewhere (the server) reaches the subscription too.
  await app.rt.publish('room_lobby', { text: 'from the server' })
  const [fromServer] = (await stream.take(5)).slice(4)
  t.same(fromServer!.json.message, { text: 'from the server' })

  const before = unsubscribedCalls.length
  const unsubscribed = await post(url, [{ identifier: room('lobby'), unsubscribe: true }], { cookie: 'user=alice' })
  t.same(unsubscribed.body, [{ session_id: sessionId, chan_id: chanId }])
  const [disconnected] = (await stream.take(6)).slice(5)
  t.match(disconnected!.json, { type: 'disconnected', ...base_ })
  t.same(unsubscribedCalls.slice(before), [{ room: 'lobby', user: 'alice' }], "the channel's unsubscribed ran")
  await app.rt.publish('room_lobby', { text: 'not for us' })
  const again = await post(url, [{ identifier: room('lobby'), subscribe: true }], { cookie: 'user=alice' })
  t.same(again.body, [{ session_id: sessionId, chan_id: chanId }], 'the chan_id of an identifier is stable within the session')
  const [reconnected] = (await stream.take(7)).slice(6)
  t.equal(reconnected!.json.type, 'connected', 'nothing published while unsubscribed was delivered')
  stream.close()
})

t.test('per-request errors and rejections', async (t) => {
  const { base } = await start(t)
  const url = `${base}/${newId()}`
  const stream = await EventStream.open(url)
  await stream.take(1)
  const res = await post(url, [
    { identifier: room('forbidden'), subscribe: true },
    { identifier: { channel: 'NoSuchChannel' }, subscribe: true },
    { identifier: room('a'), subscribe: true },
    { identifier: room('a'), subscribe: true },
    { identifier: room('b'), unsubscribe: true },
    { identifier: room('b'), send: { action: 'say', text: 'x' } },
    { identifier: room('a'), send: { action: 'nope' } },
    { identifier: room('a'), send: { action: 'fail' } }
  ])
  t.equal(res.status, 200)
  const body = res.body as Array<{ error?: string; chan_id: string; session_id: string }>
  t.same(body.map((r) => r.error), [
    undefined,
    'unknown channel: NoSuchChannel',
    undefined,
    undefined,
    'unknown subscription',
    'unknown subscription',
    'unknown action: nope',
    'action failed: fail'
  ])
  t.equal(body[2]!.chan_id, body[3]!.chan_id)
  t.equal(new Set(body.map((r) => r.chan_id)).size, 4, 'one chan_id per identifier')
  const events = (await stream.take(5)).slice(1)
  t.same(events.map((e) => e.json.type), ['rejected', 'rejected', 'connected', 'received'])
  t.same(events[0]!.json.identifier, { channel: 'RoomChannel', room: 'forbidden' })
  t.equal(events[0]!.json.chan_id, body[0]!.chan_id)
  t.same(events[1]!.json.identifier, { channel: 'NoSuchChannel' })
  stream.close()
})

t.test('identifiers with nested objects are the same whatever the key order', async (t) => {
  const { base } = await start(t)
  const url = `${base}/${newId()}`
  const res = await post(url, [
    { identifier: { channel: '$pubsub', stream_name: 'news', extra: { b: 1, a: [{ y: 1, x: 2 }] } }, subscribe: true },
    { identifier: { extra: { a: [{ x: 2, y: 1 }], b: 1 }, stream_name: 'news', channel: '$pubsub' }, subscribe: true }
  ])
  const body = res.body as Array<{ error?: string; chan_id: string }>
  t.equal(body[0]!.chan_id, body[1]!.chan_id)
  t.equal(body[1]!.error, undefined, 'a second subscribe is confirmed again (issue 21)')
})

t.test('multiple listeners off: the newer replaces the older, which is told and ended', async (t) => {
  const { base, app } = await start(t)
  const url = `${base}/${newId()}`
  const first = await EventStream.open(url)
  await first.take(1)
  const second = await EventStream.open(url)
  await second.take(1)
  await first.until(() => first.ended)
  const last = first.events.at(-1)!
  t.equal(last.event, 'replaced')
  t.same(last.json, { type: 'replaced', id: url.split('/').pop() })
  t.equal(last.retry, 31_536_000_000, 'a retry long enough that the browser does not come back')
  t.equal(first.events.length, 2, 'the older got joined, then replaced')
  await post(url, [{ identifier: room('r'), subscribe: true }])
  await second.take(3)
  t.same(second.events.map((e) => e.json.type), ['joined', 'connected', 'received'])
  t.equal(app.rtSessions.get(url.split('/').pop()!)!.listenerCount, 1)
  second.close()
})

t.test('multiple listeners on: every listener gets joined and every message', async (t) => {
  const { base, app } = await start(t, { multipleListeners: true })
  const id = newId()
  const url = `${base}/${id}`
  const first = await EventStream.open(url)
  await first.take(1)
  const second = await EventStream.open(url)
  await second.take(1)
  await first.take(2)
  t.same(first.events.map((e) => e.json), [{ type: 'joined', id }, { type: 'joined', id }], 'the older listener is told of the newer')
  await post(url, [{ identifier: room('m'), subscribe: true }])
  await first.take(4)
  await second.take(3)
  t.same(first.events.slice(2).map((e) => e.data), second.events.slice(1).map((e) => e.data), 'the same frames')
  t.equal(app.rtSessions.get(id)!.listenerCount, 2)
  first.close()
  await eventually(() => app.rtSessions.get(id)!.listenerCount === 1, 'the closed listener to be detached')
  await app.rt.publish('room_m', 'still here')
  await second.take(4)
  t.equal(second.events[3]!.json.message, 'still here')
  second.close()
})

t.test('messages queued before the EventSource opened are delivered when it joins', async (t) => {
  const { base } = await start(t)
  const url = `${base}/${newId()}`
  const res = await post(url, [{ identifier: room('early'), subscribe: true }], { cookie: 'user=bob' })
  t.equal(res.status, 200, 'a POST creates the session')
  const stream = await EventStream.open(url, { cookie: 'user=bob' })
  await stream.take(3)
  t.same(stream.events.map((e) => e.json.type), ['joined', 'connected', 'received'])
  stream.close()
})

t.test('heartbeat comments keep an idle stream open', async (t) => {
  const { base, app } = await start(t, { heartbeat: 0.01 })
  const id = newId()
  const stream = await EventStream.open(`${base}/${id}`)
  await stream.until(() => stream.comments.length >= 2)
  t.equal(stream.comments[0], ': ping')
  stream.close()
  await eventually(() => app.rtSessions.get(id)?.listenerCount === 0, 'the listener to be detached')
  t.equal(app.rtSessions.timers.count, 1, 'only the idle timer is left: no heartbeat without listeners')
})

t.test('a listener that does not read is cut off instead of buffered without bound', async (t) => {
  const { base, app } = await start(t, { maxBufferedBytes: 64 * 1024, heartbeat: 0 })
  const id = newId()
  const url = `${base}/${id}`
  const stream = await EventStream.open(url)
  await stream.take(1)
  await post(url, [{ identifier: room('flood'), subscribe: true }])
  await stream.take(3)
  stream.pause()
  const big = 'x'.repeat(64 * 1024)
  for (let i = 0; i < 200 && app.rtSessions.get(id)!.listenerCount > 0; i++) {
    await app.rt.publish('room_flood', big)
    await new Promise((resolve) => setImmediate(resolve))
  }
  await eventually(() => app.rtSessions.get(id)!.listenerCount === 0, 'the slow listener to be cut')
  t.pass('the slow listener was detached')
  stream.close()
})

t.test('fastify.close() ends event streams and answers waiting polls', async (t) => {
  const { base, app } = await start(t, { idleTimeout: 60 })
  const id = newId()
  const stream = await EventStream.open(`${base}/${id}`)
  await stream.take(1)
  await post(`${base}/${id}`, [{ identifier: room('bye'), subscribe: true }])
  const other = newId()
  const waiting = fetch(`${base}/${other}?timeout=30`, { headers: { accept: 'application/json' } })
  await eventually(() => app.rtSessions.get(other) !== undefined, 'the poll to wait')
  const before = unsubscribedCalls.length
  await app.close()
  await stream.until(() => stream.ended)
  t.ok(stream.ended, 'the stream ended')
  const answer = await waiting
  t.equal(answer.status, 200)
  t.match(await answer.json(), { messages: [], dropped: 0, queue_length: 0 })
  t.same(unsubscribedCalls.slice(before), [{ room: 'bye', user: 'guest' }], 'channels are unsubscribed on shutdown')
  t.equal(app.rtSessions.size, 0)
  t.equal(app.rtSessions.timers.count, 0, 'no timer left')
})

t.test('the hub session ends (a remote disconnect): every subscription is told disconnected, the streams end', async (t) => {
  const { base, app } = await start(t)
  const url = `${base}/${newId()}`
  const stream = await EventStream.open(url, { cookie: 'user=dora' })
  await stream.take(1)
  t.equal((await post(url, [{ identifier: room('ends'), subscribe: true }], { cookie: 'user=dora' })).status, 200)
  await stream.take(3)
  await app.rt.hub.disconnectRemote(JSON.stringify({ user: 'dora' }), false)
  await stream.text()
  const last = stream.events[stream.events.length - 1]!
  t.match(last.json, { type: 'disconnected', identifier: room('ends') }, 'told, for the subscription')
  t.notOk('message' in last.json, 'disconnected carries no message')
})
