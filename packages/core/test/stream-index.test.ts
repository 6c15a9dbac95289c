import t from 'tap'
import { StreamIndexes, streamIndex } from '../src/hub/stream-index.js'
import type { StoredSubscription } from '../src/session-store.js'

const sub = (...streams: string[]): StoredSubscription => ({ channel: 'c', params: {}, streams })

t.test('stream → identifiers, in subscription order, each identifier once', async (t) => {
  const index = new StreamIndexes(8).of({ a: sub('s1', 's2', 's1'), b: sub('s2'), c: sub() })
  t.same([...index], [['s1', ['a']], ['s2', ['a', 'b']]])
})

t.test('sessions with equal subscriptions share one index; any difference gets its own', async (t) => {
  const first = streamIndex({ '{"channel":"c"}': sub('s') })
  t.equal(streamIndex({ '{"channel":"c"}': sub('s') }), first, 'equal subscriptions, the same object')
  t.not(streamIndex({ '{"channel":"d"}': sub('s') }), first, 'another identifier')
  t.not(streamIndex({ '{"channel":"c"}': sub('s', 't') }), first, 'another stream')
  t.equal(streamIndex({}).size, 0)
  t.equal(streamIndex({}), streamIndex({}, false), 'no subscriptions: one empty index')
})

t.test('an index not shared is built for its session alone, with the same content', async (t) => {
  const subscriptions = { '{"channel":"c"}': sub('s'), '{"channel":"d"}': sub('s', 't') }
  const own = streamIndex(subscriptions, false)
  t.not(own, streamIndex(subscriptions), 'not the shared one')
  t.not(own, streamIndex(subscriptions, false), 'nor another session\'s')
  t.same([...own], [...streamIndex(subscriptions)])
})

t.test('a full cache is emptied, not grown; indexes already handed out stay valid', async (t) => {
  const indexes = new StreamIndexes(2)
  const a = indexes.of({ a: sub('s') })
  indexes.of({ b: sub('s') })
  t.equal(indexes.size, 2)
  indexes.of({ c: sub('s') })
  t.equal(indexes.size, 1, 'emptied, then the new one cached')
  t.same([...a], [['s', ['a']]])
  t.not(indexes.of({ a: sub('s') }), a, 'built again after the cache was emptied')
})
