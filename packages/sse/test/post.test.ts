import t from 'tap'
import { answer, json, open, startApp, subscribed } from './helpers.js'

const subscribe = (identifier: string, history?: unknown): string => JSON.stringify({ command: 'subscribe', identifier, ...(history === undefined ? {} : { history }) })
const pubsub = (stream: string): string => JSON.stringify({ channel: '$pubsub', stream_name: stream })

t.test('POST: several subscriptions with history, full payloads, whatever the Content-Type', async (t) => {
  const { app, base } = await startApp(t)
  await app.rt.publish('p1', 'old-1')
  await app.rt.publish('p1', 'old-2')
  const m2 = await app.rt.publish('p2', { v: 'old' })
  const since = Math.floor(Date.now() / 1000) - 10
  const body = [
    subscribe(pubsub('p1'), { since }),
    '',
    subscribe(pubsub('p2'), { streams: { p2: { offset: 0, epoch: m2.epoch } } })
  ].join('\r\n')
  for (const headers of [{ 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }, { 'content-type': 'application/json' }, {} as Record<string, string>]) {
    const stream = await open(`${base}/events`, { method: 'POST', body, headers })
    t.equal(stream.status, 200, JSON.stringify(headers))
    t.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8')
    const events = await stream.take(8)
    t.same(events.map((e) => e.event), [
      'welcome',
      'confirm_subscription', 'message', 'message', 'confirm_history',
      'confirm_subscription', 'message', 'confirm_history'
    ])
    const epoch1 = (await app.rt.broker.position('p1')).epoch
    t.same(json(events[2]!), { identifier: pubsub('p1'), message: 'old-1', stream_id: 'p1', epoch: epoch1, offset: 1 })
    t.same(json(events[3]!), { identifier: pubsub('p1'), message: 'old-2', stream_id: 'p1', epoch: epoch1, offset: 2 })
    t.match(json(events[6]!), { identifier: pubsub('p2'), message: { v: 'old' }, stream_id: 'p2', epoch: m2.epoch, offset: 1 })
    t.equal(events[6]!.id, `1/${m2.epoch}/p2`)
    stream.close()
  }
})

t.test('POST: live messages carry the whole Action Cable message', async (t) => {
  const { app, base } = await startApp(t)
  const stream = await open(`${base}/events`, { method: 'POST', body: subscribe(pubsub('live')) + '\n' })
  t.equal(stream.status, 200)
  t.same((await stream.take(2)).map((e) => e.event), ['welcome', 'confirm_subscription'])
  const published = await app.rt.publish('live', 'hello')
  const event = await stream.next()
  t.equal(event.event, 'message')
  t.same(json(event), { identifier: pubsub('live'), message: 'hello', stream_id: 'live', epoch: published.epoch, offset: 1 })
  t.equal(event.id, `1/${published.epoch}/live`)
  stream.close()
})

t.test('POST: an empty body opens a stream with the welcome only', async (t) => {
  const { base } = await startApp(t, {}, { pingInterval: 10 })
  const stream = await open(`${base}/events`, { method: 'POST' })
  t.equal(stream.status, 200)
  t.equal((await stream.next()).event, 'welcome')
  t.equal((await stream.next()).event, 'ping', 'then pings')
  stream.close()
})

t.test('POST: 400 for a bad line, a non-subscribe command, a duplicate or rejected subscription; 413 over the limit', async (t) => {
  const { base } = await startApp(t, {}, { bodyLimit: 1024 })
  const bad = await answer(`${base}/events`, { method: 'POST', body: `${subscribe(pubsub('a'))}\n{nope` })
  t.equal(bad.status, 400)
  t.match(bad.body, /line 2: malformed JSON/)
  const invalid = await answer(`${base}/events`, { method: 'POST', body: '{"command":"subscribe"}' })
  t.equal(invalid.status, 400)
  t.match(invalid.body, /line 1: invalid subscribe command/)
  const perform = await answer(`${base}/events`, { method: 'POST', body: JSON.stringify({ command: 'message', identifier: pubsub('a'), data: '{}' }) })
  t.equal(perform.status, 400)
  t.match(perform.body, /only subscribe commands/)
  const twice = await answer(`${base}/events`, { method: 'POST', body: `${subscribe(pubsub('a'))}\n${subscribe(pubsub('a'))}` })
  t.equal(twice.status, 400)
  t.match(twice.body, /already subscribed/)
  const internal = await answer(`${base}/events`, { method: 'POST', body: subscribe(pubsub('$rt:session:x')) })
  t.equal(internal.status, 400, 'internal streams are never public')
  const big = await answer(`${base}/events`, { method: 'POST', body: subscribe(pubsub('x'.repeat(2000))) })
  t.equal(big.status, 413)
})

t.test('the 64 KiB default body limit', async (t) => {
  // Names and identifiers this long are over core's default limits: raised so that only the body limit is tested.
  const { base } = await startApp(t, { limits: { maxNameLength: 70_000, maxIdentifierLength: 70_000 } })
  const line = subscribe(pubsub('y'.repeat(60_000)))
  t.equal((await open(`${base}/events`, { method: 'POST', body: line }).then((s) => { s.close(); return s.status })), 200)
  t.equal((await answer(`${base}/events`, { method: 'POST', body: subscribe(pubsub('y'.repeat(66_000))) })).status, 413)
})

t.test('X-RT-SID: commands sent to an open stream answer on the stream', async (t) => {
  const { app, base } = await startApp(t, {
    channels: {
      Chat: {
        subscribed: (ctx) => ctx.streamFrom('room'),
        actions: { speak: (ctx, data) => { void ctx.broadcast('room', { said: data.text }) } }
      }
    }
  })
  const chat = JSON.stringify({ channel: 'Chat' })
  const stream = await open(`${base}/events`, { method: 'POST', body: subscribe(chat) })
  const welcome = await stream.next()
  const sid = (json(welcome) as { sid: string }).sid
  t.equal((await stream.next()).event, 'confirm_subscription')

  const sent = await answer(`${base}/events`, {
    method: 'POST',
    headers: { 'x-rt-sid': sid, 'content-type': 'text/plain' },
    body: [JSON.stringify({ command: 'message', identifier: chat, data: JSON.stringify({ action: 'speak', text: 'hi' }) }), subscribe(pubsub('side'))].join('\n')
  })
  t.equal(sent.status, 202)
  t.same(json(await stream.next()), { identifier: chat, message: { said: 'hi' }, stream_id: 'room', epoch: (await app.rt.broker.position('room')).epoch, offset: 1 })
  t.equal((await stream.next()).event, 'confirm_subscription')
  t.equal(app.rt.hub.listeners('side'), 1)

  t.equal((await answer(`${base}/events`, { method: 'POST', headers: { 'x-rt-sid': 'nobody' }, body: subscribe(pubsub('z')) })).status, 404)
  t.equal((await answer(`${base}/events`, { method: 'POST', headers: { 'x-rt-sid': sid }, body: '{bad' })).status, 400)
  t.equal((await answer(`${base}/events`, { method: 'POST', headers: { 'x-rt-sid': sid } })).status, 400, 'no commands')
  stream.close()
})

t.test('remoteCommands: false — X-RT-SID is not special', async (t) => {
  const { base } = await startApp(t, {}, { remoteCommands: false })
  const stream = await open(`${base}/events`, { method: 'POST', headers: { 'x-rt-sid': 'whatever' }, body: subscribe(pubsub('q')) })
  t.equal(stream.status, 200, 'a stream opens, as AnyCable')
  t.equal((await stream.next()).event, 'welcome')
  stream.close()
})

t.test('GET streams take no commands: nothing in the session store, no control stream', async (t) => {
  const { app, base } = await startApp(t)
  const store = app.rt.hub.store as unknown as { size: number }
  const get = await subscribed(`${base}/events?stream=g`)
  const welcome = get.events.find((e) => e.event === 'welcome')!
  const { sid } = JSON.parse(welcome.data) as { sid: string }
  t.equal(store.size, 0)
  t.equal((await answer(`${base}/events`, { method: 'POST', headers: { 'x-rt-sid': sid }, body: subscribe(pubsub('z')) })).status, 404)
  get.close()
})
