import t, { type Test } from 'tap'
import { upstreamStream } from '../src/index.js'
import { startCable } from './fixture/cable.mjs'
import { LOBBY, counters, eventually, json, open, poll, startBridge, subscribe, subscribed, type EventStream } from './helpers.js'

const cable = await startCable()
t.teardown(() => cable.stop())

const ann = { cookie: 'user=ann' }
const lobbyPost = (base: string): Promise<EventStream> =>
  open(`${base}/events`, { method: 'POST', headers: ann, body: JSON.stringify({ command: 'subscribe', identifier: LOBBY }) })
const fast = { reconnectDelay: 50, reconnectMaxDelay: 200, pingInterval: 3000 }

/** Reads until the bridge said the subscription may have missed messages, and then that it was confirmed again. */
async function toldAndResubscribed(t: Test, stream: EventStream): Promise<void> {
  const lost = json(await stream.nextMatching((e) => e.event === 'reject_history')) as Record<string, unknown>
  t.equal(lost.identifier, LOBBY, 'told: reject_history for the subscription')
  const again = json(await stream.nextMatching((e) => e.event === 'confirm_subscription')) as Record<string, unknown>
  t.equal(again.identifier, LOBBY, 'told: confirmed again upstream')
}

t.test('upstream server_restart (reconnect: true): the bridge reconnects, re-subscribes, tells the client', async (t) => {
  const { base } = await startBridge(t, cable, fast)
  const stream = await lobbyPost(base)
  await stream.nextMatching((e) => e.event === 'confirm_subscription')
  await cable.post('/restart')
  await toldAndResubscribed(t, stream)
  await cable.broadcast({ room: 'lobby', data: { after: 'restart' } })
  const message = json(await stream.nextMatching((e) => e.event === 'message')) as { message: unknown }
  t.same(message.message, { after: 'restart' }, 'later broadcasts are delivered')
  stream.close()
})

t.test('a killed upstream (SIGKILL puma, start again): told, re-subscribed, later broadcasts delivered', async (t) => {
  const { app, base } = await startBridge(t, cable, fast)
  const stream = await lobbyPost(base)
  await stream.nextMatching((e) => e.event === 'confirm_subscription')
  await cable.kill()
  const lost = json(await stream.nextMatching((e) => e.event === 'reject_history')) as Record<string, unknown>
  t.equal(lost.identifier, LOBBY, 'told while the upstream is down')
  t.equal(app.rtActionCable.socketCount, 1, 'the session keeps its (reconnecting) upstream connection')
  await cable.start()
  const again = json(await stream.nextMatching((e) => e.event === 'confirm_subscription')) as Record<string, unknown>
  t.equal(again.identifier, LOBBY, 're-subscribed once the upstream is back')
  await cable.broadcast({ room: 'lobby', data: { after: 'kill' } })
  const message = json(await stream.nextMatching((e) => e.event === 'message')) as { message: unknown }
  t.same(message.message, { after: 'kill' })
  stream.close()
})

t.test('a silent upstream (no ping for 2× the interval) counts as dropped', async (t) => {
  // Pings come every 3 s; claiming 100 ms makes every socket look silent: it is dropped and re-opened, and the client told.
  const { base } = await startBridge(t, cable, { ...fast, pingInterval: 100 })
  const stream = await lobbyPost(base)
  await stream.nextMatching((e) => e.event === 'confirm_subscription')
  await toldAndResubscribed(t, stream)
  stream.close()
})

t.test('disconnect with reconnect: false from upstream ends the rt session with the same reason', async (t) => {
  const { app, base } = await startBridge(t, cable, fast)
  const get = await subscribed(`${base}/events?identifier=${encodeURIComponent(LOBBY)}`, 1, { headers: { cookie: 'user=carl' } })
  await cable.post('/kick', { user: 'carl', reason: 'banned' })
  const end = json(await get.nextMatching((e) => e.event === 'disconnect'))
  t.same(end, { type: 'disconnect', reason: 'banned', reconnect: false })
  await get.end()
  await eventually(() => app.rtActionCable.socketCount === 0, 'the upstream socket closed with its session')
})

t.test('disconnect with reconnect: false over long polling: the poll answer carries the same disconnect, as AnyCable\'s does', async (t) => {
  const { app, base } = await startBridge(t, cable, fast)
  const first = await poll(base, { cookie: 'user=lena', lines: [subscribe(LOBBY)] })
  t.equal(first.status, 200)
  const id = first.id!
  await cable.post('/kick', { user: 'lena', reason: 'banned' })
  await eventually(() => app.rtActionCable.socketCount === 0, 'the upstream socket closed')
  const next = await poll(base, { id })
  t.equal(next.status, 200)
  t.same(next.messages.filter((m) => m.type === 'disconnect'), [{ type: 'disconnect', reason: 'banned', reconnect: false }],
    'the protocol-level disconnect with the upstream\'s reason, not a bare 401')
  const again = await poll(base, { id })
  t.same(again.messages.filter((m) => m.type === 'disconnect'), [{ type: 'disconnect', reason: 'banned', reconnect: false }], 'and on every later poll')
  t.equal(app.rtActionCable.socketCount, 0, 'no socket re-opened for the ended session')
})

t.test('disconnect with reconnect: false while a poll is held: that poll is answered at once with the disconnect', async (t) => {
  const { app, base } = await startBridge(t, cable, fast)
  const first = await poll(base, { cookie: 'user=olga', lines: [subscribe(LOBBY)] })
  const id = first.id!
  const upstream = (await app.rt.hub.store.get(id))?.sourceState?.upstream as string
  const held = poll(base, { id })
  await eventually(() => app.rt.hub.listeners(upstreamStream(upstream, LOBBY)) > 0, 'the poll held')
  await cable.post('/kick', { user: 'olga', reason: 'banned' })
  const answer = await held
  t.equal(answer.status, 200)
  t.same(answer.messages.filter((m) => m.type === 'disconnect'), [{ type: 'disconnect', reason: 'banned', reconnect: false }],
    'the held poll carries it (not only the next one)')
})

t.test('an upstream that refuses the re-connect (unauthorized) ends the rt session: disconnect unauthorized', async (t) => {
  const { app, base } = await startBridge(t, cable, fast)
  const get = await subscribed(`${base}/events?identifier=${encodeURIComponent(LOBBY)}`, 1, { headers: { cookie: 'user=dave' } })
  await cable.post('/revoke', { user: 'dave' })
  await cable.post('/restart')
  await get.nextMatching((e) => e.event === 'reject_history')
  const end = json(await get.nextMatching((e) => e.event === 'disconnect'))
  t.same(end, { type: 'disconnect', reason: 'unauthorized', reconnect: false })
  await get.end()
  await eventually(() => app.rtActionCable.socketCount === 0, 'no socket left')
  const again = await open(`${base}/events?identifier=${encodeURIComponent(LOBBY)}`, { headers: { cookie: 'user=dave' } })
  t.equal(again.status, 401, 'and a new connection is refused')
  await again.end()
})

t.test('nothing leaks', async (t) => {
  await eventually(() => counters().sockets === 0 && counters().timers === 0, 'every socket and timer released')
  t.same(counters(), { sockets: 0, timers: 0 })
})
