import t from 'tap'
import { startCable } from './fixture/cable.mjs'
import { LOBBY, counters, eventually, json, open, poll, pollUntil, room, speak, startBridge, subscribe, subscribed } from './helpers.js'

const cable = await startCable()
t.teardown(() => cable.stop())

const ann = { cookie: 'user=ann' }
const lobbyGet = (base: string): string => `${base}/events?identifier=${encodeURIComponent(LOBBY)}`

t.test('SSE: the cookie identifies the client upstream; without it the upstream rejects, and so does rt (401)', async (t) => {
  const { app, base } = await startBridge(t, cable)
  const anonymous = await open(lobbyGet(base))
  t.equal(anonymous.status, 401)
  await anonymous.end()
  t.equal(app.rtActionCable.socketCount, 0, 'no socket kept for a rejected client')

  const stream = await subscribed(lobbyGet(base), 1, { headers: ann })
  t.equal(app.rtActionCable.socketCount, 1, 'one upstream socket for the session')
  await eventually(async () => (await cable.stats()).users.includes('ann'), 'ann connected upstream')
  await cable.broadcast({ room: 'lobby', data: { user: 'server', text: 'hello' } })
  const event = await stream.nextMatching((e) => e.event === 'message')
  t.same(json(event), { user: 'server', text: 'hello' })
  t.match(event.id, /^1\/[^/]+\/\$rt:ac:/, 'the message has a position in rt (an event id)')
  stream.close()
  await eventually(() => app.rtActionCable.socketCount === 0, 'the session end closes its upstream socket')
})

t.test('SSE POST: subscribe, confirm, reject, speak round trip', async (t) => {
  const { base } = await startBridge(t, cable, { subscribeTimeout: 500 })
  const body = [subscribe(LOBBY)].map((c) => JSON.stringify(c)).join('\n')
  const stream = await open(`${base}/events`, { method: 'POST', headers: ann, body })
  t.equal(stream.status, 200)
  const welcome = json(await stream.nextMatching((e) => e.event === 'welcome')) as { sid: string }
  t.same(json(await stream.nextMatching((e) => e.event === 'confirm_subscription')), { type: 'confirm_subscription', identifier: LOBBY })

  const send = async (command: unknown): Promise<number> => (await fetch(`${base}/events`, {
    method: 'POST', headers: { 'x-rt-sid': welcome.sid }, body: JSON.stringify(command)
  })).status
  t.equal(await send(subscribe(JSON.stringify({ channel: 'ChatChannel' }))), 202)
  t.same(json(await stream.nextMatching((e) => e.event === 'reject_subscription')),
    { type: 'reject_subscription', identifier: JSON.stringify({ channel: 'ChatChannel' }) }, 'the upstream rejects a subscription without room')
  t.equal(await send(subscribe(JSON.stringify({ channel: 'NoSuchChannel' }))), 202)
  t.same(json(await stream.nextMatching((e) => e.event === 'reject_subscription')),
    { type: 'reject_subscription', identifier: JSON.stringify({ channel: 'NoSuchChannel' }) }, 'an unknown channel (no answer upstream) is rejected after the timeout')

  // Sent right after the subscription: the bridge waits for the confirmation, so the action is not lost.
  const other = room('speak')
  t.equal(await send(subscribe(other)), 202)
  t.equal(await send(speak(other, 'hi')), 202)
  t.equal(await send(speak(other, 'again')), 202)
  const echoes = []
  for (let i = 0; i < 2; i++) {
    const event = json(await stream.nextMatching((e) => e.event === 'message' && (json(e) as { identifier: string }).identifier === other)) as { message: unknown }
    echoes.push(event.message)
  }
  t.same(echoes, [{ user: 'ann', text: 'hi' }, { user: 'ann', text: 'again' }], 'speak round trip, in order')
  stream.close()
})

t.test('long polling: rejection, subscribe, broadcast and speak', async (t) => {
  const { app, base } = await startBridge(t, cable)
  const anonymous = await poll(base, { lines: [subscribe(LOBBY)] })
  t.equal(anonymous.status, 401)
  t.same(anonymous.messages, [{ type: 'disconnect', reason: 'unauthorized', reconnect: false }])

  const first = await poll(base, { cookie: 'user=bob', lines: [subscribe(LOBBY)] })
  t.equal(first.status, 200)
  const id = first.id!
  t.ok(first.messages.some((m) => m.type === 'confirm_subscription' && m.identifier === LOBBY), 'confirmed')
  await cable.broadcast({ room: 'lobby', data: { user: 'server', text: 'to pollers' } })
  const seen = await pollUntil(base, id, (m) => m.identifier === LOBBY && 'message' in m)
  const message = seen.find((m) => 'message' in m)!
  t.same(message.message, { user: 'server', text: 'to pollers' })
  t.type(message.offset, 'number', 'with a stream position')

  const isEcho = (m: Record<string, unknown>): boolean => (m.message as { user?: string } | undefined)?.user === 'bob'
  const spoken = await poll(base, { id, lines: [speak(LOBBY, 'from bob')] })
  if (!spoken.messages.some(isEcho)) await pollUntil(base, id, isEcho)
  t.pass('speak round trip over long polling')
  t.equal(app.rtActionCable.socketCount, 1, 'one socket, however many polls')
})

t.test('SSE resume with Last-Event-ID after a client reconnect loses nothing that reached rt', async (t) => {
  const { base } = await startBridge(t, cable)
  const stream = await subscribed(lobbyGet(base), 1, { headers: ann })
  await cable.broadcast({ room: 'lobby', data: 1 })
  const first = await stream.nextMatching((e) => e.event === 'message')
  t.equal(json(first), 1)
  // Reaches rt before the client goes away, but after its last event was read: it must come back on resume.
  await cable.broadcast({ room: 'lobby', data: 2 })
  await stream.nextMatching((e) => e.event === 'message')
  stream.close()
  const resumed = await subscribed(lobbyGet(base), 1, { headers: { ...ann, 'last-event-id': first.id! } })
  const replayed = await resumed.nextMatching((e) => e.event === 'message')
  t.equal(json(replayed), 2, 'the message after the last event id is replayed')
  await cable.broadcast({ room: 'lobby', data: 3 })
  t.equal(json(await resumed.nextMatching((e) => e.event === 'message')), 3, 'live again')
  resumed.close()
})

t.test('200 sessions bridged at once; fastify.close() closes every upstream socket, no timer left', async (t) => {
  // What earlier tests closed is gone first (a terminated socket reports its close a moment later).
  await eventually(() => counters().sockets === 0 && counters().timers === 0, 'no upstream socket from earlier tests')
  const before = counters()
  const { app, base } = await startBridge(t, cable)
  const streams = await Promise.all(Array.from({ length: 200 }, (_, i) => subscribed(lobbyGet(base), 1, { headers: { cookie: `user=u${i}` } })))
  t.equal(app.rtActionCable.socketCount, 200)
  t.equal(counters().sockets - before.sockets, 200, '200 upstream sockets')
  await cable.broadcast({ room: 'lobby', data: { to: 'all' } })
  const got = await Promise.all(streams.map(async (s) => json(await s.nextMatching((e) => e.event === 'message'))))
  t.ok(got.every((g) => (g as { to?: string }).to === 'all'), 'every bridged client got the broadcast')
  await app.close()
  t.equal(app.rtActionCable.socketCount, 0)
  await eventually(() => counters().sockets === before.sockets, 'every upstream socket closed')
  t.same(counters(), before, 'no upstream socket or timer left')
})

t.test('JS channels win by name; every other channel goes upstream', async (t) => {
  const { app, base } = await startBridge(t, cable, {}, {
    channels: { ChatChannel: { subscribed: (ctx) => ctx.streamFrom('js_chat') } }
  })
  const body = JSON.stringify(subscribe(LOBBY))
  const stream = await open(`${base}/events`, { method: 'POST', headers: ann, body })
  await stream.nextMatching((e) => e.event === 'confirm_subscription')
  await cable.broadcast({ room: 'lobby', data: { from: 'rails' } })
  await app.rt.publish('js_chat', { from: 'js' })
  const message = json(await stream.nextMatching((e) => e.event === 'message')) as { message: unknown }
  t.same(message.message, { from: 'js' }, 'the JS ChatChannel serves the name, not the upstream one')
  stream.close()
})

t.test('a long-poll session that expires closes its upstream socket', async (t) => {
  const { app, base } = await startBridge(t, cable)
  const first = await poll(base, { cookie: 'user=erin', lines: [subscribe(LOBBY)] })
  t.equal(first.status, 200)
  t.equal(app.rtActionCable.socketCount, 1)
  // No further poll: the keepalive runs out and the session ends, and with it its upstream socket.
  await eventually(() => app.rtActionCable.socketCount === 0, 'the expired session\'s socket closed', 30_000)
})
