import t, { type Test } from 'tap'
import type { StreamMessage } from '@rt/core'
import { RedisBroker, RedisSessionStore, type RedisBrokerOptions } from '../src/index.js'
import { admin, cleanup, eventually, REDIS_URL, recorder, uniquePrefix, until } from './helpers.js'

const redis = await admin(t)
const prefix = uniquePrefix('epochs')
t.teardown(() => cleanup(redis, prefix))

function broker(t: Test, options: Partial<RedisBrokerOptions> = {}): RedisBroker {
  const created = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger, ...options } as RedisBrokerOptions)
  t.teardown(() => created.close())
  return created
}

t.test('epochs agree across nodes, before and after the first publish', async (t) => {
  const a = broker(t)
  const b = broker(t)
  const [onA, onB] = await Promise.all([a.position('agree'), b.position('agree')])
  t.same(onA, onB)
  t.equal(onA.offset, 0)
  const published = await b.publish('agree', 1)
  t.equal(published.epoch, onA.epoch, 'the first publish keeps the epoch a position read created')
  t.same(await a.position('agree'), { offset: 1, epoch: onA.epoch })
})

t.test('the epoch and offsets survive closing and recreating the broker (a process restart)', async (t) => {
  const first = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger })
  for (let i = 1; i <= 3; i++) await first.publish('restart', i)
  const { epoch } = await first.position('restart')
  await first.close()
  const second = broker(t)
  t.same(await second.position('restart'), { offset: 3, epoch })
  const next = await second.publish('restart', 4)
  t.same([next.offset, next.epoch], [4, epoch])
  const history = await second.history('restart', { after: { offset: 2, epoch } })
  t.same(history.messages.map((m) => m.data), [3, 4])
  t.equal(history.complete, true, 'a client holding a position from before the restart resumes without a gap')
})

t.test('a new epoch only when the keys are really gone', async (t) => {
  const a = broker(t)
  const old = await a.publish('flushed', 'x')
  await redis.del(`${prefix}{flushed}:m`, `${prefix}{flushed}:h`)
  const fresh = await a.publish('flushed', 'y')
  t.equal(fresh.offset, 1)
  t.not(fresh.epoch, old.epoch)
  const resumed = await a.history('flushed', { after: { offset: 1, epoch: old.epoch } })
  t.equal(resumed.complete, false, 'the old position is reported as gone')
})

t.test('a history left without its epoch (e.g. evicted by maxmemory) is dropped, not mixed into a new epoch', async (t) => {
  const a = broker(t)
  for (let i = 1; i <= 3; i++) await a.publish('orphan', i)
  await redis.del(`${prefix}{orphan}:m`)
  const fresh = await a.publish('orphan', 'new')
  t.equal(fresh.offset, 1)
  const history = await a.history('orphan', { since: 0 })
  t.same(history.messages.map((m) => m.data), ['new'])
})

t.test("a stream's keys expire streamTtl after the last write; it then starts a new epoch", async (t) => {
  const a = broker(t, { historyTtl: 0.05, streamTtl: 0.2 })
  t.equal(a.streamTtlMs, 200)
  const old = await a.publish('idle', 1)
  const ttl = await redis.pttl(`${prefix}{idle}:h`)
  t.ok(ttl > 0 && ttl <= 200, 'history key has the stream TTL')
  t.ok((await redis.pttl(`${prefix}{idle}:m`)) > 0, 'meta key has the stream TTL')
  await eventually(async () => (await redis.exists(`${prefix}{idle}:m`, `${prefix}{idle}:h`)) === 0, 'keys to expire')
  const fresh = await a.publish('idle', 2)
  t.not(fresh.epoch, old.epoch)
  t.equal(fresh.offset, 1)
})

t.test('historyTtl Infinity: keys do not expire; the default stream TTL is ten history TTLs', async (t) => {
  const forever = broker(t, { historyTtl: Infinity })
  t.equal(forever.streamTtlMs, Infinity)
  await forever.publish('forever', 1)
  t.equal(await redis.pttl(`${prefix}{forever}:m`), -1)
  t.equal(await redis.pttl(`${prefix}{forever}:h`), -1)
  const defaults = broker(t)
  t.equal(defaults.historyLimit, 100)
  t.equal(defaults.historyTtlMs, 300_000)
  t.equal(defaults.streamTtlMs, 3_000_000)
})

t.test('key prefix isolation', async (t) => {
  const other = uniquePrefix('epochs-other')
  t.teardown(() => cleanup(redis, other))
  const a = broker(t)
  const b = broker(t, { keyPrefix: other })
  const live: StreamMessage[] = []
  a.subscribe('shared-name', (m) => live.push(m))
  await a.position('shared-name')
  const onB = await b.publish('shared-name', 'b')
  const onA = await a.publish('shared-name', 'a')
  t.equal(onA.offset, 1, 'offsets are per prefix')
  t.equal(onB.offset, 1)
  t.not(onA.epoch, onB.epoch)
  // 'b' went out first: had it been on the same channel it would have arrived first.
  await until(() => live.length === 1, 'delivery')
  t.same(live.map((m) => m.data), ['a'], "the other prefix's messages are not delivered")
  t.same((await a.history('shared-name', { since: 0 })).messages.map((m) => m.data), ['a'])
  const keys = [...await redis.keys(`*{shared-name}*`)].sort()
  t.same(keys, [`${other}{shared-name}:h`, `${other}{shared-name}:m`, `${prefix}{shared-name}:h`, `${prefix}{shared-name}:m`].sort(),
    'every key lives under its prefix and carries the stream as a hash tag')

  const sessionsA = new RedisSessionStore({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger })
  const sessionsB = new RedisSessionStore({ url: REDIS_URL, keyPrefix: other, logger: recorder().logger })
  t.teardown(() => Promise.all([sessionsA.close(), sessionsB.close()]))
  await sessionsA.create({ sid: 'same', identity: {}, subscriptions: {}, positions: {}, outbox: [], transport: {}, lease: 0, createdAt: 1 }, 10_000)
  t.equal(await sessionsB.get('same'), undefined)
  t.ok(await sessionsA.get('same'))
  t.equal(await redis.exists(`${prefix}session:same`), 1)
})
