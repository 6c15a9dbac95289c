import t from 'tap'
import { categoryPoll } from '../src/index.js'
import Fastify from 'fastify'
import { rtCore } from '@rt/core'
import { CountingBroker, eventsOf, start, until, fastify } from './helpers.js'

t.test('maxEventBufferSize: only the newest N events are visible (case 35)', async (t) => {
  const s = await start(t, { maxEventBufferSize: 3 })
  for (let i = 1; i <= 5; i++) await s.publish('buf', i)
  t.same(eventsOf(await s.json('category=buf&timeout=1&since_time=0')).map((e) => e.data), [3, 4, 5])
})

t.test('eventTimeToLiveSeconds: expired events are never returned, without any purge (case 36)', async (t) => {
  let clock = Date.now() - 60_000
  const broker = new CountingBroker({ now: () => clock })
  t.teardown(() => broker.close())
  const s = await start(t, { eventTimeToLiveSeconds: 30 }, { broker })
  await s.publish('ttl', 'a minute old')
  clock = Date.now()
  await s.publish('ttl', 'fresh')
  t.same(eventsOf(await s.json('category=ttl&timeout=1&since_time=0')).map((e) => e.data), ['fresh'])
  clock = Date.now() - 60_000
  const longLived = new CountingBroker({ now: () => clock })
  t.teardown(() => longLived.close())
  const forever = await start(t, { eventTimeToLiveSeconds: 0 }, { broker: longLived })
  await forever.publish('ttl', 'a minute old')
  clock = Date.now()
  t.same(eventsOf(await forever.json('category=ttl&timeout=1&since_time=0')).map((e) => e.data), ['a minute old'], '0 means forever')
})

t.test('deleteEventAfterFirstRetrieval: a buffered event is returned once (case 37)', async (t) => {
  const s = await start(t, { deleteEventAfterFirstRetrieval: true })
  await s.publish('note', 'once')
  await s.publish('note', 'twice')
  t.same(eventsOf(await s.json('category=note&timeout=1&since_time=0')).map((e) => e.data), ['once', 'twice'])
  t.ok('timeout' in await s.json('category=note&timeout=1&since_time=0'), 'deleted after the first retrieval')
})

t.test('deleteEventAfterFirstRetrieval: every parked client gets the event, then it is not buffered (case 37)', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  // A request joins its category synchronously once beforeSubscribe has passed: counting the hook's calls counts held requests.
  let arrived = 0
  const s = await start(t, { deleteEventAfterFirstRetrieval: true, beforeSubscribe: () => { arrived++ } }, { broker })
  const held = [s.json('category=n&timeout=30'), s.json('category=n&timeout=30')]
  await until(() => arrived === 2)
  await s.publish('n', 'ding')
  for (const body of await Promise.all(held)) t.same(eventsOf(body).map((e) => e.data), ['ding'])
  t.equal((await broker.history('n', { since: 0 })).messages.length, 0, 'deleted from the broker')
  t.ok('timeout' in await s.json('category=n&timeout=1&since_time=0'), 'a later poll finds nothing')
})

t.test('a failing delete is logged, the answer is already sent', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  broker.remove = async () => {
    throw new Error('disk on fire')
  }
  const logs: string[] = []
  const app = fastify({ logger: { level: 'error', stream: { write: (line: string) => logs.push(line) } } })
  await app.register(rtCore, { broker })
  await app.register(categoryPoll, { deleteEventAfterFirstRetrieval: true })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  await app.rt.publish('x', 1)
  const res = await fetch(`${origin}/events?category=x&timeout=1&since_time=0`)
  t.same(eventsOf(await res.json() as Record<string, unknown>).map((e) => e.data), [1])
  await until(() => logs.some((line) => line.includes('could not delete retrieved events')))
  t.pass('logged')
})

t.test('invalid options fail at register time with a clear message; 0 means the default (case 38)', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [{ maxEventBufferSize: -1 }, /maxEventBufferSize must be a positive integer \(0 means 250\)/],
    [{ maxEventBufferSize: 1.5 }, /maxEventBufferSize/],
    [{ maxLongpollTimeoutSeconds: -1 }, /maxLongpollTimeoutSeconds must be a positive integer \(0 means 110\)/],
    [{ maxLongpollTimeoutSeconds: '60' }, /maxLongpollTimeoutSeconds/],
    [{ eventTimeToLiveSeconds: -2 }, /eventTimeToLiveSeconds must be a positive number/],
    [{ eventTimeToLiveSeconds: Number.NaN }, /eventTimeToLiveSeconds/],
    [{ eventTimeToLiveSeconds: '1' }, /eventTimeToLiveSeconds/],
    [{ maxEventsPerResponse: 0.5 }, /maxEventsPerResponse/],
    [{ bodyLimit: -1 }, /bodyLimit/],
    [{ deleteEventAfterFirstRetrieval: 'yes' }, /deleteEventAfterFirstRetrieval must be a boolean/],
    [{ enablePublish: 1 }, /enablePublish must be a boolean/],
    [{ enablePublish: true }, /enablePublish needs publishKey or beforePublish/],
    [{ enablePublish: true, publishKey: 'k', publishPath: '/events' }, /must differ/],
    [{ publishKey: '' }, /publishKey must be a non-empty string/],
    [{ subscribePath: 'events' }, /subscribePath must be a path starting with "\/"/],
    [{ publishPath: 5 }, /publishPath/],
    [{ beforeSubscribe: 'yes' }, /beforeSubscribe must be a function/],
    [{ beforePublish: {} }, /beforePublish must be a function/],
    [{ errorStatus: 500 }, /errorStatus must be 200 or 400/],
    [{ persistence: 'file.jsonl' }, /persistence must be an object/],
    [{ persistence: {} }, /persistence.file must be a non-empty path/],
    [{ persistence: { file: 'x', flushIntervalMs: -1 } }, /persistence.flushIntervalMs/],
    [{ persistence: { file: 'x', fsync: 'yes' } }, /persistence.fsync must be a boolean/],
    [{ persistence: { file: 'x', compactAfterBytes: 0 } }, /persistence.compactAfterBytes/],
    [{ subscriptionLingerMs: -1 }, /subscriptionLingerMs must be a non-negative integer/],
    [{ subscriptionLingerMs: 1.5 }, /subscriptionLingerMs/],
    [{ subscriptionLingerMs: '2000' }, /subscriptionLingerMs/]
  ]
  for (const [options, message] of bad) {
    const app = Fastify()
    await app.register(rtCore)
    await t.rejects(Promise.resolve(app.register(categoryPoll, options as never).ready()), { name: 'TypeError', message: /^@rt\/category-poll: / }, String(message))
    await t.rejects(Promise.resolve(Fastify().register(rtCore).register(categoryPoll, options as never).ready()), { message }, String(message))
    await app.close()
  }
  const zero = await start(t, { maxEventBufferSize: 0, maxLongpollTimeoutSeconds: 0, maxEventsPerResponse: 0, bodyLimit: 0 })
  t.same(await zero.json('category=c&timeout=111'), { error: "Invalid or missing 'timeout' arg.  Must be 1-110." }, 'zero values are the defaults')
  await t.rejects(Promise.resolve(Fastify().register(categoryPoll).ready()), /@rt\/core/, 'core must be registered first')
})
