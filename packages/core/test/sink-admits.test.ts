import t from 'tap'
import type { Outgoing } from '../src/hub/protocol.js'
import { makeHub, RecordingSink } from './helpers.js'

/** A pull sink with room for `room` stream messages (as a long-poll answer with a size cap). */
class CappedSink extends RecordingSink {
  constructor(private room: number) {
    super()
  }
  admits(_replies: readonly Outgoing[]): boolean {
    return this.room-- > 0
  }
}

t.test('a pull sink that refuses a message keeps the position before it, for catch-up and live messages', async (t) => {
  const { hub, broker, store } = makeHub(t, { publicStreams: true })
  const identifier = JSON.stringify({ channel: '$pubsub', stream_name: 'a' })
  const first = await broker.publish('a', 1)
  await broker.publish('a', 2)
  await store.create({
    sid: 's1', identity: {}, outbox: [], transport: {}, lease: 0, createdAt: 0,
    subscriptions: { [identifier]: { channel: '$pubsub', params: { stream_name: 'a' }, streams: ['a'] } },
    positions: { a: { offset: 0, epoch: first.epoch } }
  }, 10_000)
  const sink = new CappedSink(1)
  const session = (await hub.resume('s1', sink))!
  await broker.publish('a', 3)
  t.same(sink.messages.map((message) => (message as { message?: unknown }).message), [1], 'only what fitted was sent')
  await session.confirm()
  session.detach()
  t.same((await store.get('s1'))!.positions.a, { offset: 1, epoch: first.epoch }, 'confirmed up to what was sent')
  const next = new CappedSink(10)
  const again = (await hub.resume('s1', next))!
  t.same(next.messages.map((message) => (message as { message?: unknown }).message), [2, 3], 'the rest comes with the next request, once')
  again.detach()
})
