// Fuzz (issue 14): hostile data and meta through the Redis broker. What is accepted is read back, live on
// another node and from history, as the very text encoded at publish; what cannot be encoded is refused
// before it reaches Redis.
import t from 'tap'
import type { StreamMessage } from '@rt/core'
import { hostileJsonTexts, hugeName } from '@rt/core/testing'
import { RedisBroker, type RedisBrokerOptions } from '../src/index.js'
import { admin, cleanup, REDIS_URL, recorder, uniquePrefix, until } from './helpers.js'

const redis = await admin(t)
const prefix = uniquePrefix('fuzz')
t.teardown(() => cleanup(redis, prefix))

const broker = (): RedisBroker => {
  const created = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger, historyLimit: 1000 } as RedisBrokerOptions)
  t.teardown(() => created.close())
  return created
}

t.test('hostile data and meta: accepted or refused, never stored unreadable', async (t) => {
  const a = broker()
  const b = broker()
  const live: StreamMessage[] = []
  b.subscribe('f', (message) => live.push(message))
  await b.position('f')
  await until(() => b.liveStreams === 1, 'the second node to listen')
  const accepted: StreamMessage[] = []
  let refused = 0
  for (const text of hostileJsonTexts(14)) {
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      value = text
    }
    for (const [data, meta] of [[value, undefined], [text, { broadcast_type: text.slice(0, 5000), exclude_socket: '"},\\' }]] as const) {
      try {
        accepted.push(await a.publish('f', data, meta === undefined ? {} : { meta }))
      } catch (error) {
        t.match((error as Error).message, /cannot be encoded as JSON|nested deeper than 1000 levels/)
        refused++
      }
    }
  }
  t.ok(refused > 0, `${refused} refused`)
  await until(() => live.length === accepted.length, 'live delivery of every accepted message')
  t.same(live.map((m) => m.json), accepted.map((m) => m.json), 'live on another node: the same text')
  t.same(live.map((m) => m.meta), accepted.map((m) => m.meta))
  const history = await b.history('f', { since: 0 })
  t.same(history.messages.map((m) => m.json), accepted.map((m) => m.json), 'from history: the same text')
  t.same((await a.publish(hugeName(1000), 1)).offset, 1, 'long names are the entry points\' business; the broker stores them')
})
