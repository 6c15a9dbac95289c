import t from 'tap'
import { MemoryBroker, type Broker, type HistoryQuery, type HistoryResult, type StreamPosition } from '@rt/core'
import { answer, json, open, startApp, subscribed, tick, type EventStream, type SseEvent } from './helpers.js'

const offsetOf = (event: SseEvent): number => Number(event.id!.split('/')[0])

/** Reads data events until `count` were read, failing on anything but data and confirm_history. */
async function dataEvents(stream: EventStream, count: number): Promise<SseEvent[]> {
  const events: SseEvent[] = []
  while (events.length < count) {
    const event = await stream.next()
    if (event.event === 'message') events.push(event)
  }
  return events
}

t.test('Last-Event-ID replays exactly what was missed, in order, then goes live', async (t) => {
  const { app, base } = await startApp(t)
  const first = await subscribed(`${base}/events?stream=r`)
  for (let i = 1; i <= 3; i++) await app.rt.publish('r', { n: i })
  const seen = await first.take(3)
  t.same(seen.map((e) => json(e)), [{ n: 1 }, { n: 2 }, { n: 3 }])
  first.close()
  await first.end()
  for (let i = 4; i <= 6; i++) await app.rt.publish('r', { n: i })

  const resumed = await open(`${base}/events?stream=r`, { headers: { 'last-event-id': seen[2]!.id! } })
  t.equal(resumed.status, 200)
  const events = await resumed.take(6)
  t.same(events.map((e) => e.event), ['welcome', 'confirm_subscription', 'message', 'message', 'message', 'confirm_history'])
  t.same(events.slice(2, 5).map((e) => json(e)), [{ n: 4 }, { n: 5 }, { n: 6 }])
  t.same(events.slice(2, 5).map(offsetOf), [4, 5, 6])
  await app.rt.publish('r', { n: 7 })
  const live = await resumed.next()
  t.same(json(live), { n: 7 })
  t.equal(offsetOf(live), 7)
  resumed.close()

  // The query parameter, for clients that cannot set headers; the header wins over it.
  const byQuery = await subscribed(`${base}/events?stream=r&last_event_id=${encodeURIComponent(events[4]!.id!)}`)
  t.same((await byQuery.take(2)).map((e) => e.data), ['{"n":7}', '{"type":"confirm_history","identifier":"{\\"channel\\":\\"$pubsub\\",\\"stream_name\\":\\"r\\"}"}'])
  byQuery.close()
  const both = await subscribed(`${base}/events?stream=r&last_event_id=${encodeURIComponent(seen[0]!.id!)}`, 1, { headers: { 'last-event-id': events[4]!.id! } })
  t.same(json(await both.next()), { n: 7 }, 'the header wins')
  both.close()
})

t.test('messages published while the stream reconnects: no gap, no duplicate', async (t) => {
  const { app, base } = await startApp(t)
  const first = await subscribed(`${base}/events?stream=busy`)
  await app.rt.publish('busy', 1)
  const last = await first.next()
  first.close()
  await first.end()
  for (let i = 2; i <= 10; i++) await app.rt.publish('busy', i)
  // Keep publishing while the resumed stream authenticates, subscribes and replays.
  let publishing = true
  let n = 10
  const publisher = (async () => {
    while (publishing && n < 200) {
      await app.rt.publish('busy', ++n)
      await tick()
    }
  })()
  const resumed = await open(`${base}/events?stream=busy`, { headers: { 'last-event-id': last.id! } })
  const received = await dataEvents(resumed, 20)
  publishing = false
  await publisher
  const rest = await dataEvents(resumed, n - 1 - 20)
  const offsets = [...received, ...rest].map(offsetOf)
  t.same(offsets, Array.from({ length: n - 1 }, (_, i) => i + 2), 'every offset after the last seen one, once, in order')
  t.same([...received, ...rest].map((e) => Number(e.data)), offsets)
  resumed.close()
})

/**
 * A broker whose reads take real time (as Redis's do), so that live messages
 * arrive while the hub reads a stream's position and its history.
 */
class SlowBroker extends MemoryBroker implements Broker {
  override async history(stream: string, query: HistoryQuery): Promise<HistoryResult> {
    await new Promise((resolve) => setTimeout(resolve, 5))
    return super.history(stream, query)
  }

  override async position(stream: string): Promise<StreamPosition> {
    const position = await super.position(stream)
    await new Promise((resolve) => setTimeout(resolve, 5))
    return position
  }
}

t.test('with a slow broker, a message published during the replay keeps its place after the backlog', async (t) => {
  const broker = new SlowBroker()
  t.teardown(() => broker.close())
  const { app, base } = await startApp(t, { broker })
  for (let i = 1; i <= 5; i++) await app.rt.publish('slow', i)
  const opening = open(`${base}/events?stream=slow`, { headers: { 'last-event-id': `2/${(await broker.position('slow')).epoch}/slow` } })
  // Publish while the hub reads the position and the history.
  const publishing = (async () => {
    for (let i = 6; i <= 15; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1))
      await app.rt.publish('slow', i)
    }
  })()
  const stream = await opening
  await publishing
  const received = await dataEvents(stream, 13)
  t.same(received.map(offsetOf), Array.from({ length: 13 }, (_, i) => i + 3), 'offsets 3..15 once each, in order')
  stream.close()
})

t.test('multi-stream GET: every id carries a cursor for all streams, and a reconnect resumes them all', async (t) => {
  const { app, base } = await startApp(t)
  await app.rt.publish('b', 'b1')
  const epochB = (await app.rt.broker.position('b')).epoch
  const first = await subscribed(`${base}/events?stream=a&stream=b&stream=a`, 2)
  await app.rt.publish('a', 'a1')
  const epochA = (await app.rt.broker.position('a')).epoch
  const a1 = await first.next()
  t.equal(a1.data, 'a1')
  t.equal(a1.id, `~1/${epochA}/a,1/${epochB}/b`, 'b has not spoken on this connection: its start position is in the cursor')
  await app.rt.publish('b', 'b2')
  await app.rt.publish('a', 'a2')
  const [b2, a2] = await first.take(2)
  t.equal(b2!.id, `~1/${epochA}/a,2/${epochB}/b`)
  t.equal(a2!.id, `~2/${epochA}/a,2/${epochB}/b`)
  first.close()
  await first.end()
  await app.rt.publish('b', 'b3')
  await app.rt.publish('a', 'a3')
  await app.rt.publish('b', 'b4')

  const resumed = await open(`${base}/events?stream=a&stream=b`, { headers: { 'last-event-id': a2!.id! } })
  const events = await resumed.take(8)
  const types = events.map((e) => e.event)
  t.same(types.filter((type) => type !== 'message'), ['welcome', 'confirm_subscription', 'confirm_history', 'confirm_subscription', 'confirm_history'])
  const data = events.filter((e) => e.event === 'message')
  t.same(data.map((e) => e.data).sort(), ['a3', 'b3', 'b4'], 'exactly what was missed on both streams')
  t.same(data.filter((e) => e.data.startsWith('b')).map((e) => e.data), ['b3', 'b4'], 'in order per stream')
  t.equal(data.at(-1)!.id!.startsWith('~'), true)
  await app.rt.publish('a', 'a4')
  const a4 = await resumed.next()
  t.equal(a4.data, 'a4')
  t.equal(a4.id, `~4/${epochA}/a,4/${epochB}/b`)
  resumed.close()
  await resumed.end()

  // A stream name with the separators in it round-trips.
  await app.rt.publish('team/7,x', 'one')
  const odd = await subscribed(`${base}/events?stream=${encodeURIComponent('team/7,x')}&stream=a`, 2)
  await app.rt.publish('team/7,x', 'two')
  const two = await odd.next()
  t.match(two.id, /^~4\/[^,]+\/a,2\/[^/]+\/team%2F7%2Cx$/)
  odd.close()
  await odd.end()
  await app.rt.publish('team/7,x', 'three')
  const again = await open(`${base}/events?stream=${encodeURIComponent('team/7,x')}&stream=a`, { headers: { 'last-event-id': two.id! } })
  const replay = await again.take(6)
  t.same(replay.map((e) => e.event), ['welcome', 'confirm_subscription', 'message', 'confirm_history', 'confirm_subscription', 'confirm_history'])
  t.equal(replay[2]!.data, 'three')
  again.close()
})

t.test('a position older than the history, or from another epoch: reject_history, then live', async (t) => {
  const { app, base } = await startApp(t, { history: { historyLimit: 3 } })
  const first = await subscribed(`${base}/events?stream=old`)
  await app.rt.publish('old', 1)
  const one = await first.next()
  first.close()
  await first.end()
  for (let i = 2; i <= 6; i++) await app.rt.publish('old', i)
  const epoch = (await app.rt.broker.position('old')).epoch

  const evicted = await subscribed(`${base}/events?stream=old`, 1, { headers: { 'last-event-id': one.id! } })
  const rejected = await evicted.next()
  t.equal(rejected.event, 'reject_history', 'told, not silently caught up')
  t.same(json(rejected), { type: 'reject_history', identifier: '{"channel":"$pubsub","stream_name":"old"}' })
  await app.rt.publish('old', 7)
  const live = await evicted.next()
  t.equal(live.data, '7', 'and continues live')
  evicted.close()

  for (const id of [`3/another/old`, `99/${epoch}/old`]) {
    const stream = await subscribed(`${base}/events?stream=old`, 1, { headers: { 'last-event-id': id } })
    t.equal((await stream.next()).event, 'reject_history', id)
    stream.close()
  }

  const raw = await open(`${base}/events?stream=old&raw=1`, { headers: { 'last-event-id': '3/another/old' } })
  t.equal(raw.status, 200)
  await app.rt.publish('old', 8)
  const rawLive = await raw.next()
  t.equal(rawLive.data, '8', 'raw mode: no reject_history event, live continues')
  t.equal(raw.events.length, 1)
  raw.close()
})

t.test('Last-Event-ID forms', async (t) => {
  const { app, base } = await startApp(t)
  t.equal((await answer(`${base}/events?stream=f`, { headers: { 'last-event-id': 'x/e/f' } })).status, 400, 'an offset that is not a number')
  t.equal((await answer(`${base}/events?stream=f`, { headers: { 'last-event-id': '1//f' } })).status, 400)
  t.equal((await answer(`${base}/events?stream=f`, { headers: { 'last-event-id': '~1/e' } })).status, 400, 'a cursor entry without its stream')
  t.equal((await answer(`${base}/events?stream=f`, { headers: { 'last-event-id': '~1/e/%E0%A4%A' } })).status, 400, 'bad percent-encoding')
  const ignored = await subscribed(`${base}/events?stream=f`, 1, { headers: { 'last-event-id': '5/only-two' } })
  await app.rt.publish('f', 'x')
  t.equal((await ignored.next()).data, 'x', 'fewer than three parts: ignored, as AnyCable (no history asked)')
  ignored.close()
})

t.test('a quiet stream the memory broker forgot while the client was away: what was written since is replayed', async (t) => {
  const { app, base } = await startApp(t)
  const first = await subscribed(`${base}/events?stream=loud&stream=quiet`, 2)
  await app.rt.publish('loud', 'x')
  const x = await first.next()
  t.match(x.id, /^~1\/[^/]+\/loud,0\/[^/]+\/quiet$/, 'the quiet stream is in the cursor at offset 0')
  first.close()
  await first.end()
  // With no listener and no history the memory broker drops the stream; written again, it starts a new epoch.
  while (app.rt.hub.listeners('quiet') > 0) await new Promise((resolve) => setTimeout(resolve, 2))
  await app.rt.publish('quiet', 'written while away')
  const resumed = await open(`${base}/events?stream=loud&stream=quiet`, { headers: { 'last-event-id': x.id! } })
  const events = await resumed.take(6)
  t.same(events.map((e) => e.event === 'message' ? e.data : [e.event, (JSON.parse(e.data) as { identifier?: string }).identifier]), [
    ['welcome', undefined],
    ['confirm_subscription', '{"channel":"$pubsub","stream_name":"loud"}'],
    ['confirm_history', '{"channel":"$pubsub","stream_name":"loud"}'],
    ['confirm_subscription', '{"channel":"$pubsub","stream_name":"quiet"}'],
    'written while away',
    ['confirm_history', '{"channel":"$pubsub","stream_name":"quiet"}']
  ], 'offset 0 of a vanished epoch: nothing was read, so the new epoch is replayed from its start')
  await app.rt.publish('quiet', 'live')
  t.equal((await resumed.next()).data, 'live')
  resumed.close()
})
