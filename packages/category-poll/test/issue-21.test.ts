/**
 * Issue 21: the clients golongpoll's users already have. Each test pins one case
 * that failed before: UUID ids (golongpoll's Go client), golongpoll's retention
 * for categories, `/_broadcast` data for the Go `long_polling` wrapper.
 */
import { formatMessageId, MemoryBroker } from '@rt/core'
import t from 'tap'
import { validate, version } from 'uuid'
import { encodeEvent, eventsBody } from '../src/encoder.js'
import { categoryEventId, epochTag, parseCategoryEventId } from '../src/event-id.js'
import { eventsOf, start, type Server, type WireEvent } from './helpers.js'

/**
 * golongpoll's Go client loop (client/client.go): `since_time` and `last_id` of
 * the last event, `since_time` moved to a timeout's timestamp, every id decoded
 * as a UUID — here by the `uuid` package's strict parser. Stops after `count` events.
 */
async function goClient(s: Server, category: string, count: number, since = 0): Promise<{ events: WireEvent[]; bodies: Array<Record<string, unknown>> }> {
  const events: WireEvent[] = []
  const bodies: Array<Record<string, unknown>> = []
  let lastId = ''
  for (let polls = 0; events.length < count; polls++) {
    if (polls === 50) throw new Error(`gave up after 50 polls with ${events.length} of ${count} events`)
    const body = await s.json(`category=${category}&timeout=1&since_time=${since}${lastId === '' ? '' : `&last_id=${lastId}`}`)
    bodies.push(body)
    if (typeof body.timestamp === 'number') since = Math.max(since, body.timestamp)
    for (const event of eventsOf(body)) {
      if (!validate(event.id) || version(event.id) !== 8) throw new Error(`uuid: incorrect UUID ${event.id}`)
      since = event.timestamp
      lastId = event.id
      events.push(event)
    }
  }
  return { events, bodies }
}

t.test('case 1: event ids are version-8 UUIDs; the Go client loop reads every event through same-millisecond bursts', async (t) => {
  let clock = 1_700_000_000_000
  const broker = new MemoryBroker({ historyLimit: 1000, historyTtl: Infinity, now: () => clock })
  t.teardown(() => broker.close())
  const s = await start(t, {}, { broker })
  for (let i = 1; i <= 200; i++) {
    if (i % 21 === 0) clock++
    await s.publish('goclient', `m-${i}`)
  }
  const { events } = await goClient(s, 'goclient', 200)
  t.same(events.map((event) => event.data), Array.from({ length: 200 }, (_, i) => `m-${i + 1}`), '200 of 200, in order')
  t.equal(new Set(events.map((event) => event.id)).size, 200, 'unique ids')
  // Parked on the last id: the next event is new by its position.
  const last = events.at(-1)!
  const held = s.json(`category=goclient&timeout=30&since_time=${last.timestamp}&last_id=${last.id}`)
  await new Promise((resolve) => setTimeout(resolve, 20))
  await s.publish('goclient', 'm-201')
  t.same(eventsOf(await held).map((event) => event.data), ['m-201'])
  // A client that still holds one of golongpoll's own (v4) ids: an unknown id, so since_time decides, inclusively.
  const migrated = s.json(`category=goclient&timeout=30&since_time=${Date.now() + 1000}&last_id=7fa9e38c-e43b-49d7-9ae1-cc3c8d99d714`)
  await new Promise((resolve) => setTimeout(resolve, 20))
  clock = Date.now() + 1000
  await s.publish('goclient', 'm-202')
  t.same(eventsOf(await migrated).map((event) => event.data), ['m-202'])
})

t.test('case 1: an id maps to the SSE id and back; last_id takes every UUID form and the older rt id', async (t) => {
  let clock = 1_700_000_000_000
  const broker = new MemoryBroker({ historyLimit: 1000, historyTtl: Infinity, now: () => clock })
  t.teardown(() => broker.close())
  const s = await start(t, {}, { broker })
  const published = [await broker.publish('map', 1), await broker.publish('map', 2), await broker.publish('map', 3)]
  clock++
  const [first] = published
  const id = categoryEventId(first!)
  const parsed = parseCategoryEventId(id)!
  t.equal(parsed.offset, first!.offset)
  t.equal(Buffer.from(parsed.epochTag, 'hex').toString('base64url'), first!.epoch, 'the epoch, packed whole')
  t.equal(formatMessageId(first!), `${parsed.offset}/${first!.epoch}/map`, 'the SSE id: offset/epoch/category')
  const bare = id.replace(/-/g, '')
  // Same millisecond: only a position (not since_time) can tell events 2 and 3 from event 1.
  for (const form of [id, id.toUpperCase(), `{${id}}`, `urn:uuid:${id}`, bare, formatMessageId(first!)]) {
    const body = await s.json(`category=map&timeout=1&since_time=${first!.timestamp}&last_id=${encodeURIComponent(form)}`)
    t.same(eventsOf(body).map((event) => event.data), [2, 3], form)
    t.notOk('incomplete' in body, `${form}: nothing missing`)
  }
  t.equal(parseCategoryEventId('7fa9e38c-e43b-49d7-9ae1-cc3c8d99d714'), undefined, "golongpoll's v4 ids carry no position")
  t.equal(parseCategoryEventId('{7fa9e38c-e43b-8000-8000-cc3c8d99d714'), undefined, 'an unbalanced brace is not a UUID')
  t.equal(parseCategoryEventId('000000000000-8000-8000-000000000000'), undefined, 'no UUID')
  t.equal(parseCategoryEventId('00000000-0000-8000-8000-000000000000'), undefined, 'offset 0 is no event')
  t.equal(parseCategoryEventId('00000000-0000-8000-b000-000000000000')?.offset, undefined, 'past 2^53 is no offset')
})

t.test('case 1: epochs rt did not make (a custom broker, a restored journal) are tagged by a hash and still resolve', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 1000, historyTtl: Infinity })
  t.teardown(() => broker.close())
  const at = Date.now()
  const messages = [1, 2, 3].map((n) => ({ stream: 'odd', offset: n, epoch: 'epoch from elsewhere', timestamp: at, data: n }))
  broker.restore([{ stream: 'odd', epoch: 'epoch from elsewhere', lastOffset: 3, messages }])
  const s = await start(t, {}, { broker })
  const all = eventsOf(await s.json('category=odd&timeout=1&since_time=0'))
  t.ok(all.every((event) => validate(event.id) && version(event.id) === 8))
  t.equal(parseCategoryEventId(all[0]!.id)!.epochTag, epochTag('epoch from elsewhere'))
  t.same(eventsOf(await s.json(`category=odd&timeout=1&since_time=${at}&last_id=${all[0]!.id}`)).map((event) => event.data), [2, 3])
})

t.test('case 3: categories keep 250 events forever on a broker keeping 100 for 300 s; other streams keep the broker\'s', async (t) => {
  let clock = Date.now()
  const broker = new MemoryBroker({ historyLimit: 100, historyTtl: 300, now: () => clock })
  t.teardown(() => broker.close())
  const s = await start(t, { categories: 'cat:' }, { broker })
  for (let i = 1; i <= 260; i++) {
    await s.publish('cat:farm', `m-${String(i).padStart(3, '0')}`)
    await s.publish('chat', i)
  }
  const { events, bodies } = await goClient(s, 'cat:farm', 250)
  t.same(events.map((event) => event.data), Array.from({ length: 250 }, (_, i) => `m-${String(i + 11).padStart(3, '0')}`), '250 events published at once: all read')
  t.equal(bodies[0]!.incomplete, true, 'since_time=0 while 10 events are gone: said so')
  t.notOk(bodies.slice(1).some((body) => 'incomplete' in body), 'following the cursor, nothing is missing')
  t.equal((await broker.history('chat', { since: 0 })).messages.length, 100, "another stream keeps the broker's limit")
  clock += 310_000
  t.equal(eventsOf(await s.json('category=cat:farm&timeout=1&since_time=0')).length, 100, 'still there 310 s later (one page of the 250)')
  t.equal((await broker.history('chat', { since: 0 })).messages.length, 0, "the other stream expired by the broker's age")
})

t.test('case 3: a cursor older than what is retained is answered with incomplete, never silently', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 100, historyTtl: Infinity })
  t.teardown(() => broker.close())
  const s = await start(t, { maxEventBufferSize: 3 }, { broker })
  const published = []
  for (let i = 1; i <= 5; i++) published.push(await broker.publish('gap', i))
  const [first, , , , last] = published
  const evicted = await s.json(`category=gap&timeout=1&since_time=${first!.timestamp}&last_id=${categoryEventId(first!)}`)
  t.same(eventsOf(evicted).map((event) => event.data), [3, 4, 5])
  t.equal(evicted.incomplete, true, 'last_id evicted: event 2 is gone')
  const lost = await s.json(`category=gap&timeout=1&since_time=0&last_id=1/another-epoch/gap`)
  t.same(eventsOf(lost).map((event) => event.data), [3, 4, 5])
  t.equal(lost.incomplete, true, 'an id of a history that is gone')
  const upToDate = await s.get(`category=gap&timeout=1&since_time=${last!.timestamp}&last_id=${categoryEventId(last!)}`)
  t.match(await upToDate.text(), /^\{"timeout":"no events before timeout","timestamp":\d+\}$/, 'nothing missing: no field')
  const gone = await s.json(`category=gap&timeout=1&since_time=${last!.timestamp + 1}&last_id=${categoryEventId({ offset: 1, epoch: 'AAAAAAAA' })}`)
  t.equal(gone.timeout, 'no events before timeout')
  t.equal(gone.incomplete, true, 'a timeout says so too')
})

t.test('case 3: the view hides events a broker with a larger retention still holds, and says so', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 100, historyTtl: Infinity })
  t.teardown(() => broker.close())
  const s = await start(t, { maxEventBufferSize: 2, categories: () => false }, { broker })
  for (let i = 1; i <= 4; i++) await broker.publish('view', i)
  const body = await s.json('category=view&timeout=1&since_time=0')
  t.same(eventsOf(body).map((event) => event.data), [3, 4])
  t.equal(body.incomplete, true)

  let clock = Date.now() - 60_000
  const aging = new MemoryBroker({ historyLimit: 100, historyTtl: Infinity, now: () => clock })
  t.teardown(() => aging.close())
  const ttl = await start(t, { eventTimeToLiveSeconds: 30, categories: () => false }, { broker: aging })
  await aging.publish('old', 'a minute old')
  clock = Date.now()
  await aging.publish('old', 'fresh')
  const expired = await ttl.json('category=old&timeout=1&since_time=0')
  t.same(eventsOf(expired).map((event) => event.data), ['fresh'])
  t.equal(expired.incomplete, true, 'expired for the category, though the broker still has it')
})

t.test('the exported encoders write the default settings', async (t) => {
  const message = { stream: 'c', offset: 2, epoch: 'AAAAAAAA', timestamp: 5, data: { x: 1 }, meta: { json_string: true } }
  t.equal(encodeEvent(message), '{"timestamp":5,"category":"c","data":"{\\"x\\":1}","id":"00000000-0000-8000-8000-000000000002"}')
  t.equal(eventsBody([message], true), `{"events":[${encodeEvent(message)}],"incomplete":true}`)
  t.equal(eventsBody([]), '{"events":[]}')
})

t.test('case 4: /_broadcast data reaches category clients as the JSON string published, or parsed with broadcastData: parsed', async (t) => {
  for (const [broadcastData, expected] of [[undefined, ['{"x":1}', 'plain', '42', 'quoted']], ['parsed', [{ x: 1 }, 'plain', 42, 'quoted']]] as const) {
    const s = await start(t, broadcastData === undefined ? {} : { broadcastData }, { broadcastKey: 'key' })
    const body = JSON.stringify([
      { stream: 'wrap', data: '{"x":1}' }, { stream: 'wrap', data: 'plain' }, { stream: 'wrap', data: '42' }, { stream: 'wrap', data: '"quoted"' }
    ])
    t.equal((await fetch(`${s.origin}/_broadcast`, { method: 'POST', headers: { authorization: 'Bearer key' }, body })).status, 201)
    await s.publish('wrap', { from: 'the app' })
    const events = eventsOf(await s.json('category=wrap&timeout=1&since_time=0'))
    t.same(events.map((event) => event.data), [...expected, { from: 'the app' }], `broadcastData ${broadcastData ?? 'default'}`)
    if (broadcastData === undefined) {
      // The Go wrapper's struct: `Data string` for every event of a /_broadcast.
      t.ok(events.slice(0, 4).every((event) => typeof event.data === 'string'), 'every broadcast event decodes as a Go string')
    }
  }
  await t.rejects(start(t, { broadcastData: 'json' as never }), /broadcastData must be 'string' or 'parsed'/)
  await t.rejects(start(t, { categories: 5 as never }), /categories must be a stream name prefix, a RegExp or a function/)
})

t.test('categories as a RegExp select streams, without the state of the g flag', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 2, historyTtl: Infinity })
  t.teardown(() => broker.close())
  await start(t, { categories: /^farm$/g }, { broker })
  for (let i = 1; i <= 5; i++) {
    await broker.publish('farm', i)
    await broker.publish('farmer', i)
  }
  t.equal((await broker.history('farm', { since: 0 })).messages.length, 5)
  t.equal((await broker.history('farm', { since: 0 })).messages.length, 5, 'the same answer twice (no lastIndex state)')
  t.equal((await broker.history('farmer', { since: 0 })).messages.length, 2)
})
