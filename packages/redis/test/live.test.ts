import t, { type Test } from 'tap'
import type { StreamMessage } from '@rt/core'
import { RedisBroker } from '../src/index.js'
import { brokerScript } from '../src/broker-script.js'
import { streamKeys } from '../src/keys.js'
import { admin, cleanup, REDIS_URL, recorder, uniquePrefix, until } from './helpers.js'

// Live delivery on one node: what the subscriber does when messages go missing, epochs change or listeners misbehave.
const redis = await admin(t)
const prefix = uniquePrefix('live')
t.teardown(() => cleanup(redis, prefix))

function broker(t: Test, logger = recorder().logger): RedisBroker {
  const created = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger })
  t.teardown(() => created.close())
  return created
}

/** Publishes through the real script but on a channel nobody listens to: stored, never delivered live. */
async function publishUnseen(stream: string, data: unknown): Promise<void> {
  const keys = streamKeys(prefix, stream)
  await brokerScript.run(redis, [keys.meta, keys.history], ['publish', 'unused', 100, 300_000, 3_000_000, `${prefix}nowhere`, JSON.stringify({ data }), '0', 'PUBLISH'])
}

function listen(broker: RedisBroker, stream: string): StreamMessage[] {
  const received: StreamMessage[] = []
  broker.subscribe(stream, (m) => received.push(m))
  return received
}

t.test('a skipped offset is read from history before later messages are delivered', async (t) => {
  const a = broker(t)
  const received = listen(a, 'gap')
  await a.position('gap')
  await a.publish('gap', 1)
  await publishUnseen('gap', 2)
  await publishUnseen('gap', 3)
  await a.publish('gap', 4)
  await a.publish('gap', 5)
  await until(() => received.length >= 5, 'five messages')
  t.same(received.map((m) => [m.offset, m.data]), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]])
})

t.test('a stream whose keys vanished continues live in its new epoch, gaps in it filled', async (t) => {
  const a = broker(t)
  const received = listen(a, 'reset')
  await a.position('reset')
  const old = await a.publish('reset', 'old')
  await redis.del(`${prefix}{reset}:m`, `${prefix}{reset}:h`)
  const first = await a.publish('reset', 'new 1')
  t.not(first.epoch, old.epoch)
  await until(() => received.length === 2, 'the first message of the new epoch')
  await redis.del(`${prefix}{reset}:m`, `${prefix}{reset}:h`)
  await publishUnseen('reset', 'newer 1')
  await a.publish('reset', 'newer 2')
  await until(() => received.length === 4, 'the third epoch')
  t.same(received.map((m) => m.data), ['old', 'new 1', 'newer 1', 'newer 2'])
  t.equal(new Set(received.map((m) => m.epoch)).size, 3)
})

t.test('transient messages keep their place among stored ones', async (t) => {
  const a = broker(t)
  const b = broker(t)
  const received = listen(b, 'mixed')
  await b.position('mixed')
  const sent = []
  for (let i = 0; i < 60; i++) sent.push(i % 3 === 1 ? a.publish('mixed', `t${i}`, { transient: true }) : a.publish('mixed', `s${i}`))
  await Promise.all(sent)
  await until(() => received.length === 60, 'every message')
  t.same(received.map((m) => m.data), Array.from({ length: 60 }, (_, i) => (i % 3 === 1 ? `t${i}` : `s${i}`)))
})

t.test('a listener that throws is logged and does not stop the others', async (t) => {
  const { logger, errors } = recorder()
  const a = broker(t, logger)
  a.subscribe('throws', () => {
    throw new Error('boom')
  })
  const received = listen(a, 'throws')
  await a.position('throws')
  await a.publish('throws', 1)
  await until(() => received.length === 1, 'delivery')
  t.match(errors, [/a listener of throws threw/])
})

t.test('a payload that is not an rt message is logged and dropped', async (t) => {
  const { logger, errors } = recorder()
  const a = broker(t, logger)
  const received = listen(a, 'garbage')
  await a.position('garbage')
  const channel = streamKeys(prefix, 'garbage').channel
  await until(() => a.liveStreams === 1, 'the subscription')
  // Published until the subscription has surely taken effect (then the rt message follows it).
  for (let i = 0; received.length === 0 && i < 100; i++) {
    await redis.publish(channel, 'not json')
    await redis.publish(channel, '{"o":"x"}')
    await a.publish('garbage', i)
  }
  await until(() => received.length >= 1, 'the real message')
  t.ok(errors.length >= 2)
  t.match(errors[0], /dropped an undecodable message on garbage/)
})

t.test('unsubscribing before the subscription is set up, and subscribing again', async (t) => {
  const a = broker(t)
  const stop = a.subscribe('flaky', () => undefined)
  stop()
  stop()
  t.equal(a.liveStreams, 0)
  const received = listen(a, 'flaky')
  await a.position('flaky')
  await a.publish('flaky', 'kept')
  await until(() => received.length === 1, 'delivery to the new subscription')
  t.same(received.map((m) => m.data), ['kept'])
})

t.test('the same listener subscribed twice is called twice and removed once per unsubscribe', async (t) => {
  const a = broker(t)
  const seen: unknown[] = []
  const listener = (m: StreamMessage): void => {
    seen.push(m.data)
  }
  const first = a.subscribe('twice', listener)
  const second = a.subscribe('twice', listener)
  await a.publish('twice', 1)
  await until(() => seen.length === 2, 'two deliveries')
  first()
  await a.publish('twice', 2)
  await until(() => seen.length === 3, 'one delivery')
  second()
  t.same(seen, [1, 1, 2])
})

t.test('after SCRIPT FLUSH the script is sent again and calls keep their order', async (t) => {
  const a = broker(t)
  const received = listen(a, 'flush')
  await a.position('flush')
  await redis.script('FLUSH')
  const published = await Promise.all([1, 2, 3].map((i) => a.publish('flush', i)))
  t.same(published.map((m) => m.offset), [1, 2, 3])
  await until(() => received.length === 3, 'delivery')
  t.same(received.map((m) => m.data), [1, 2, 3])
})

t.test('payloads: any JSON value, undefined as null; what JSON cannot encode is refused', async (t) => {
  const a = broker(t)
  const values = [null, 0, 'text', [1, { a: [] }], { nested: { deep: true } }, '{"not":"parsed"}']
  for (const value of values) await a.publish('json', value)
  const undefinedData = await a.publish('json', undefined)
  t.equal(undefinedData.data, undefined, 'the caller gets back what it published')
  const history = await a.history('json', { since: 0 })
  t.same(history.messages.map((m) => m.data), [...values, null])
  await t.rejects(a.publish('json', 10n), TypeError)
  const withMeta = await a.publish('json', 1, { meta: { broadcast_type: 'presence' } })
  const read = await a.history('json', { after: { offset: withMeta.offset - 1, epoch: withMeta.epoch } })
  t.same(read.messages[0]!.meta, { broadcast_type: 'presence' })
})

t.test('history arguments', async (t) => {
  const a = broker(t)
  const { epoch } = await a.publish('args', 1)
  await a.publish('args', 2)
  t.same((await a.history('args', { since: 0, limit: 0 })).messages, [])
  t.same((await a.history('args', { after: { offset: 0, epoch }, limit: 0 })).messages, [])
  t.same((await a.history('args', { after: { offset: -5, epoch }, limit: Infinity })).messages.map((m) => m.data), [1, 2])
  t.same((await a.history('args', { since: Date.now() + 60_000 })).messages, [], 'nothing is that new')
  await t.rejects(a.history('args', { since: 0, limit: -1 }), TypeError)
  await t.rejects(a.history('args', { since: 0, limit: 1.5 }), TypeError)
  await t.rejects(a.history('args', { since: 'yesterday' as unknown as number }), TypeError)
  await t.rejects(a.history('args', { after: { offset: NaN, epoch } }), TypeError)
  await a.remove('args', [0, -1, 1.5, Number.MAX_VALUE])
  t.equal((await a.history('args', { since: 0 })).messages.length, 2, 'offsets that cannot exist are ignored')
})

t.test('history by time finds its start in a long history', async (t) => {
  const a = broker(t)
  const stamps: number[] = []
  for (let i = 0; i < 90; i++) {
    stamps.push((await a.publish('long', i)).timestamp)
    if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 3))
  }
  for (const pick of [1, 17, 40, 63, 89]) {
    const since = stamps[pick]!
    const expected = stamps.map((stamp, i) => [stamp, i]).filter(([stamp]) => stamp! >= since).map(([, i]) => i)
    t.same((await a.history('long', { since })).messages.map((m) => m.data), expected, `since message ${pick}`)
  }
  await a.remove('long', [41, 42, 43])
  const since = stamps[40]!
  const expected = stamps.map((stamp, i) => [stamp, i]).filter(([stamp, i]) => stamp! >= since && ![40, 41, 42].includes(i!)).map(([, i]) => i)
  t.same((await a.history('long', { since })).messages.map((m) => m.data), expected, 'with removed entries')
})
