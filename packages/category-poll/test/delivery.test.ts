import { formatMessageId, type StreamMessage } from '@rt/core'
import { categoryEventId } from '../src/event-id.js'
import t from 'tap'
import { CountingBroker, eventsOf, start, timers, until, type WireEvent, NO_LINGER } from './helpers.js'

t.test('timeout answer: golongpoll body, timestamp usable as the next since_time (case 12)', async (t) => {
  const s = await start(t)
  const before = Date.now()
  const res = await s.get('category=quiet&timeout=1')
  const text = await res.text()
  t.match(text, /^\{"timeout":"no events before timeout","timestamp":\d+\}$/)
  const { timestamp } = JSON.parse(text) as { timestamp: number }
  t.ok(timestamp >= before && timestamp <= Date.now(), 'server clock')
  // An event published after the timeout, possibly in the same millisecond, is newer than that timestamp.
  await s.publish('quiet', 'after the timeout')
  const next = await s.json(`category=quiet&timeout=1&since_time=${timestamp}`)
  t.same(eventsOf(next).map((e) => e.data), ['after the timeout'])
})

t.test('since_time filtering, oldest first, event shape (cases 13-16, 24)', async (t) => {
  const s = await start(t)
  const published: StreamMessage[] = []
  for (const data of ['a', { b: [1] }, 0, false, '']) published.push(await s.app.rt.publish('farm', data))
  const all = eventsOf(await s.json('category=farm&timeout=1&since_time=0'))
  t.same(all.map((e) => e.data), ['a', { b: [1] }, 0, false, ''], 'every buffered event, oldest first')
  t.same(Object.keys(all[0]!), ['timestamp', 'category', 'data', 'id'], "golongpoll's key order")
  t.same(all.map((e) => e.id), published.map(categoryEventId), 'the id is the position as a UUID')
  t.equal(new Set(all.map((e) => e.id)).size, 5)
  const third = published[2]!
  const since = eventsOf(await s.json(`category=farm&timeout=1&since_time=${third.timestamp - 1}`))
  t.same(since.map((e) => e.id), published.filter((m) => m.timestamp > third.timestamp - 1).map(categoryEventId), 'ts > since_time')
  const after = eventsOf(await s.json(`category=farm&timeout=1&since_time=${third.timestamp}&last_id=${formatMessageId(third)}`))
  t.same(after.map((e) => e.data), [false, ''], 'with last_id: exactly the events after it, same millisecond included')
  const notNew = await s.json(`category=farm&timeout=1&since_time=${published[4]!.timestamp}&last_id=${formatMessageId(published[4]!)}`)
  t.ok('timeout' in notNew, 'nothing after the last event: held, then timeout')
})

t.test('same-millisecond events are never skipped: without last_id ts == since_time is excluded, with it included (case 15, 16)', async (t) => {
  let clock = 1_000_000
  const broker = new CountingBroker({ now: () => clock })
  t.teardown(() => broker.close())
  const s = await start(t, NO_LINGER, { broker })
  const [m1, m2, m3] = [await s.app.rt.publish('ms', 1), await s.app.rt.publish('ms', 2), await s.app.rt.publish('ms', 3)]
  t.equal(m1.timestamp, m3.timestamp, 'three events in one millisecond')
  t.same(eventsOf(await s.json(`category=ms&timeout=1&since_time=${clock - 1}`)).map((e) => e.data), [1, 2, 3])
  t.ok('timeout' in await s.json(`category=ms&timeout=1&since_time=${clock}`), 'golongpoll: ts == since_time without last_id is not new')
  t.same(eventsOf(await s.json(`category=ms&timeout=1&since_time=${clock}&last_id=${formatMessageId(m1)}`)).map((e) => e.data), [2, 3])
  t.same(eventsOf(await s.json(`category=ms&timeout=1&since_time=${clock}&last_id=${formatMessageId(m2)}`)).map((e) => e.data), [3])
  // A clock step backwards cannot hide an event from a client holding a last_id.
  clock -= 5000
  await s.app.rt.publish('ms', 4)
  t.same(eventsOf(await s.json(`category=ms&timeout=1&since_time=${m3.timestamp}&last_id=${formatMessageId(m3)}`)).map((e) => e.data), [4])
})

t.test('unknown last_id (other epoch, UUID, another category): events at or after since_time, duplicates rather than gaps (cases 17, 18)', async (t) => {
  const s = await start(t)
  const m1 = await s.app.rt.publish('c', 1)
  await s.app.rt.publish('c', 2)
  const unknown = [
    `1/no-such-epoch/c`,
    `99999/${m1.epoch}/c`,
    '00000000-0000-0000-0000-000000000000',
    '7FA9E38C-E43B-49D7-9AE1-CC3C8D99D714',
    `1/${m1.epoch}/other-category`
  ]
  for (const lastId of unknown) {
    const events = eventsOf(await s.json(`category=c&timeout=1&since_time=${m1.timestamp}&last_id=${encodeURIComponent(lastId)}`))
    t.same(events.map((e) => e.data), [1, 2], lastId)
  }
})

t.test('live delivery: parked subscribers all get the event, other categories do not (cases 19-21)', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  // A request joins its category synchronously once beforeSubscribe has passed: counting the hook's calls counts held requests.
  let arrived = 0
  const s = await start(t, { ...NO_LINGER, beforeSubscribe: () => { arrived++ } }, { broker })
  const a1 = s.get('category=A&timeout=30')
  const a2 = s.get('category=A&timeout=30&since_time=0')
  const b = s.get('category=B&timeout=30')
  await until(() => arrived === 3)
  t.equal(broker.listeners, 2, 'one broker subscription per category, however many requests are held on it')
  const message = await s.app.rt.publish('A', { msg: 'hello' })
  const [text1, text2] = await Promise.all([(await a1).text(), (await a2).text()])
  const r1 = JSON.parse(text1) as Record<string, unknown>
  t.same(eventsOf(r1), [{ timestamp: message.timestamp, category: 'A', data: { msg: 'hello' }, id: categoryEventId(message) }])
  t.equal(text2, text1, 'same event, same id and timestamp, the same bytes')
  t.equal(broker.listeners, 1, 'only the B subscriber is still held')
  await s.app.rt.publish('B', 'b')
  t.same(eventsOf(await (await b).json() as Record<string, unknown>).map((e) => e.data), ['b'])
  t.equal(broker.listeners, 0)
})

t.test('a parked request honours since_time: no event older than it (fixes the golongpoll quirk, case 22)', async (t) => {
  let clock = Date.now()
  const broker = new CountingBroker({ now: () => clock })
  t.teardown(() => broker.close())
  const s = await start(t, NO_LINGER, { broker })
  const future = clock + 3_600_000
  const held = s.json(`category=f&timeout=30&since_time=${future}`)
  await until(() => broker.listeners === 1)
  await s.app.rt.publish('f', 'older than since_time')
  clock = future + 1
  await s.app.rt.publish('f', 'newer')
  t.same(eventsOf(await held).map((e) => e.data), ['newer'])
})

t.test('a burst of 1000 rapid publishes with colliding timestamps is delivered once each, in order, by the documented loop (cases 23, 42)', async (t) => {
  const s = await start(t, { maxEventsPerResponse: 64, maxEventBufferSize: 1000 })
  const startTime = Date.now() - 1
  for (let i = 0; i < 1000; i++) await s.app.rt.publish('burst', i)
  const seen: number[] = []
  let sinceTime = startTime
  let lastId = ''
  let pages = 0
  while (seen.length < 1000) {
    // The JS client's loop: last_id always present, empty when unknown; since_time not advanced on timeouts.
    const events: WireEvent[] = eventsOf(await s.json(`category=burst&timeout=1&since_time=${sinceTime}&last_id=${encodeURIComponent(lastId)}`))
    if (events.length === 0 || events.length > 64) {
      t.fail(`page ${pages}: ${events.length} events`)
      break
    }
    for (const event of events) {
      seen.push(event.data as number)
      sinceTime = event.timestamp
      lastId = event.id
    }
    pages++
  }
  t.same(seen, Array.from({ length: 1000 }, (_, i) => i), 'all, once, in order')
  t.equal(pages, Math.ceil(1000 / 64))
  t.ok('timeout' in await s.json(`category=burst&timeout=1&since_time=${sinceTime}&last_id=${encodeURIComponent(lastId)}`), 'then nothing more')
})

t.test('events published while a poll reads history are not lost', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const s = await start(t, NO_LINGER, { broker })
  const history = broker.history.bind(broker)
  let publishDuringRead = true
  broker.history = async (stream, query) => {
    const result = await history(stream, query)
    if (publishDuringRead) {
      publishDuringRead = false
      await broker.publish(stream, 'in the gap')
    }
    return result
  }
  const body = await s.json('category=gap&timeout=5&since_time=0')
  t.same(eventsOf(body).map((e) => e.data), ['in the gap'])
})

t.test('a message broadcast to stream X is an event of category X; transient messages are not events', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const s = await start(t, NO_LINGER, { broker, broadcastKey: 'key' })
  const held = s.json('category=news&timeout=30')
  await until(() => broker.listeners === 1)
  const transient = await fetch(`${s.origin}/_broadcast`, {
    method: 'POST', headers: { authorization: 'Bearer key' }, body: JSON.stringify({ stream: 'news', data: '"live only"', meta: { transient: true } })
  })
  t.equal(transient.status, 201)
  const res = await fetch(`${s.origin}/_broadcast`, { method: 'POST', headers: { authorization: 'Bearer key' }, body: JSON.stringify({ stream: 'news', data: '{"headline":"hi"}' }) })
  t.equal(res.status, 201)
  t.same(eventsOf(await held).map((e) => e.data), ['{"headline":"hi"}'], 'the JSON string as published (broadcastData: string)')
})

t.test('a client disconnect releases the held request at once: no listener, no timer (case 25)', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const s = await start(t, NO_LINGER, { broker })
  const baseline = timers()
  const controller = new AbortController()
  const held = s.get('category=gone&timeout=100', { signal: controller.signal }).catch((error: unknown) => error)
  await until(() => broker.listeners === 1)
  t.equal(timers(), baseline + 1, 'one timer while held')
  controller.abort()
  t.match(await held, { name: 'AbortError' })
  await until(() => broker.listeners === 0)
  t.equal(timers(), baseline, 'timer cleared')
  const delivered: unknown[] = []
  broker.subscribe('gone', (m) => delivered.push(m.data))
  await s.app.rt.publish('gone', 'nobody waits')
  t.same(delivered, ['nobody waits'], 'the publish went to the remaining listener only')
})

t.test('app.close() answers held requests with a timeout at once', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const s = await start(t, NO_LINGER, { broker })
  const since = Date.now() - 10
  const held = [s.json('category=c1&timeout=100'), s.json(`category=c2&timeout=100&since_time=${since}`)]
  await until(() => broker.listeners === 2)
  await s.app.close()
  const answers = await Promise.all(held)
  for (const answer of answers) t.match(answer, { timeout: 'no events before timeout', timestamp: Number })
  t.equal(broker.listeners, 0)
})

t.test('a held cursor survives an epoch change (history lost, e.g. a Redis failover): since_time decides then', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const listeners: Array<(message: StreamMessage) => void> = []
  const subscribe = broker.subscribe.bind(broker)
  broker.subscribe = (stream, listener) => {
    listeners.push(listener)
    return subscribe(stream, listener)
  }
  const s = await start(t, NO_LINGER, { broker })
  const seen = await s.app.rt.publish('e', 'seen')
  const held = s.json(`category=e&timeout=30&since_time=${seen.timestamp}&last_id=${formatMessageId(seen)}`)
  await until(() => broker.listeners === 1)
  const base = { stream: 'e', offset: 1, epoch: 'new-epoch', data: 'before the cursor' }
  listeners[0]!({ ...base, timestamp: seen.timestamp - 1 })
  listeners[0]!({ ...base, offset: 2, timestamp: seen.timestamp + 1, data: 'in the new epoch' })
  t.same(eventsOf(await held).map((e) => e.data), ['in the new epoch'])
  listeners[0]!({ ...base, offset: 3, timestamp: seen.timestamp + 2, data: 'late call of a removed listener' })
  t.equal(broker.listeners, 0, 'answered once, nothing left behind')
})

t.test('data published as undefined in process is sent as null', async (t) => {
  const s = await start(t)
  await s.app.rt.publish('u', undefined)
  t.match(await (await s.get('category=u&timeout=1&since_time=0')).text(), /"data":null,/)
})

t.test("the Go client's loop: since_time truncated to seconds, advanced to the timeout timestamp, last_id kept (case 43)", async (t) => {
  const s = await start(t)
  let since = Math.floor(Date.now() / 1000) * 1000
  let lastId = ''
  const query = (): string => `category=go&timeout=1&since_time=${since}${lastId === '' ? '' : `&last_id=${encodeURIComponent(lastId)}`}`
  for (const data of ['a', 'b', 'c']) await s.publish('go', data)
  const seen: unknown[] = []
  for (let round = 0; round < 3; round++) {
    const body = await s.json(query())
    if ('timeout' in body) {
      since = Math.max(since, body.timestamp as number)
      if (round === 1) await s.publish('go', 'after a timeout')
      continue
    }
    for (const event of eventsOf(body)) {
      seen.push(event.data)
      since = event.timestamp
      lastId = event.id
    }
  }
  t.same(seen, ['a', 'b', 'c', 'after a timeout'], 'events, a timeout, then the next event: each exactly once')
})
