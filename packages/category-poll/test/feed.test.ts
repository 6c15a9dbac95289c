import { MemoryBroker, type StreamMessage } from '@rt/core'
import t from 'tap'
import { EventEncoder, eventsBody } from '../src/encoder.js'
import { CategoryFeeds, type FeedMember, type SharedAnswer } from '../src/feed.js'
import { CountingBroker, until } from './helpers.js'

class Member implements FeedMember {
  readonly got: Array<{ message: StreamMessage; body: Buffer }> = []
  constructor(private readonly incomplete = false, private readonly onOffer?: () => void) {}
  offer(message: StreamMessage, answer: SharedAnswer): void {
    this.got.push({ message, body: answer.body(this.incomplete) })
    this.onOffer?.()
  }
}

t.test('members of one category share one broker subscription, released with the last member (no linger)', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const feeds = new CategoryFeeds(broker, new EventEncoder(), { lingerMs: 0 })
  const [a, b, c] = [new Member(), new Member(), new Member()]
  const leaveA = feeds.join('x', a)
  const leaveB = feeds.join('x', b)
  const leaveC = feeds.join('y', c)
  t.equal(broker.listeners, 2, 'one subscription per category')
  t.equal(feeds.size, 2)
  await broker.publish('x', 'one')
  t.same([a.got.length, b.got.length, c.got.length], [1, 1, 0])
  leaveA()
  leaveA()
  t.equal(broker.listeners, 2, 'a member leaving (twice) keeps the feed while another is joined')
  leaveB()
  t.equal(broker.listeners, 1, 'the last member unsubscribes the feed')
  await broker.publish('x', 'two')
  t.equal(b.got.length, 1, 'a member that left gets nothing')
  leaveC()
  t.equal(broker.listeners, 0)
  t.equal(feeds.size, 0)
  const again = new Member()
  const leave = feeds.join('x', again)
  t.equal(broker.listeners, 1, 'a category joined again subscribes again')
  await broker.publish('x', 'three')
  t.same(again.got.map((g) => g.message.data), ['three'])
  leave()
})

t.test('every member answered with an event gets the same bytes, encoded once per variant', async (t) => {
  const broker = new MemoryBroker()
  t.teardown(() => broker.close())
  const feeds = new CategoryFeeds(broker, new EventEncoder())
  const plain = [new Member(), new Member()]
  const incomplete = [new Member(true), new Member(true)]
  for (const member of [...plain, ...incomplete]) feeds.join('s', member)
  const message = await broker.publish('s', { n: 1 })
  t.equal(plain[0]!.got[0]!.body, plain[1]!.got[0]!.body, 'one Buffer for every complete answer')
  t.equal(incomplete[0]!.got[0]!.body, incomplete[1]!.got[0]!.body, 'one Buffer for every incomplete answer')
  t.equal(plain[0]!.got[0]!.body.toString(), eventsBody([message]))
  t.equal(incomplete[0]!.got[0]!.body.toString(), eventsBody([message], true))
})

t.test('a member that leaves while the event is handed out does not stop the others from getting it', async (t) => {
  const broker = new MemoryBroker()
  t.teardown(() => broker.close())
  const feeds = new CategoryFeeds(broker, new EventEncoder(), { lingerMs: 0 })
  const leaves: Array<() => void> = []
  // Answered requests leave their feed inside offer(), as HeldPoll does.
  const members = [0, 1, 2].map((i) => new Member(false, () => leaves[i]!()))
  for (const member of members) leaves.push(feeds.join('z', member))
  await broker.publish('z', 'once')
  t.same(members.map((m) => m.got.length), [1, 1, 1])
  t.equal(feeds.size, 0, 'the feed went with its last member')
})

t.test('an emptied feed lingers subscribed: a member joining within lingerMs reuses it, the sweep unsubscribes it after', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  let clock = 1_000_000
  const feeds = new CategoryFeeds(broker, new EventEncoder(), { lingerMs: 1000, now: () => clock })
  t.teardown(() => feeds.close())
  const first = new Member()
  feeds.join('x', first)()
  t.equal(broker.listeners, 1, 'still subscribed once its last member left')
  t.equal(feeds.lingeringCount, 1)
  await broker.publish('x', 'to nobody')
  t.equal(first.got.length, 0, 'a lingering feed hands nothing to members that left')
  const second = new Member()
  const leave = feeds.join('x', second)
  t.equal(broker.listeners, 1, 'the next member reuses the subscription')
  t.equal(feeds.lingeringCount, 0, 'and the feed no longer lingers')
  await broker.publish('x', 'live')
  t.same(second.got.map((g) => g.message.data), ['live'])
  leave()
  feeds.join('y', new Member())()
  clock += 999
  feeds.sweep()
  t.equal(broker.listeners, 2, 'kept until lingerMs has passed')
  clock += 1
  feeds.sweep()
  t.equal(broker.listeners, 0, 'then unsubscribed')
  t.equal(feeds.size, 0)
  t.equal(feeds.lingeringCount, 0)
})

t.test('the sweeper runs on its own while a feed lingers, and stops when none does', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const feeds = new CategoryFeeds(broker, new EventEncoder(), { lingerMs: 20 })
  t.notOk(feeds.sweeping, 'no timer while nothing lingers')
  feeds.join('x', new Member())()
  feeds.join('y', new Member())()
  t.ok(feeds.sweeping, 'a sweeper for the lingering feeds')
  await until(() => broker.listeners === 0)
  t.equal(feeds.size, 0)
  t.notOk(feeds.sweeping, 'the sweeper stopped with the last lingering feed')
})

t.test('at most maxLingering feeds linger: past it a feed unsubscribes with its last member', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const feeds = new CategoryFeeds(broker, new EventEncoder(), { maxLingering: 2 })
  t.teardown(() => feeds.close())
  for (const category of ['a', 'b', 'c']) feeds.join(category, new Member())()
  t.equal(feeds.lingeringCount, 2)
  t.equal(broker.listeners, 2, 'the third category unsubscribed at once')
})

t.test('close() ends every subscription and the sweeper', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const feeds = new CategoryFeeds(broker, new EventEncoder())
  feeds.join('lingering', new Member())()
  feeds.join('held', new Member())
  t.equal(broker.listeners, 2)
  feeds.close()
  t.equal(broker.listeners, 0)
  t.equal(feeds.size, 0)
  t.notOk(feeds.sweeping)
})

t.test('a broker that refuses the subscription leaves no feed behind', async (t) => {
  const broker = new MemoryBroker()
  await broker.close()
  const feeds = new CategoryFeeds(broker, new EventEncoder())
  t.throws(() => feeds.join('c', new Member()))
  t.equal(feeds.size, 0)
})

t.test("an event's cached bytes own their memory: a slice of Buffer's shared pool would keep the pool alive with the message", async (t) => {
  const broker = new MemoryBroker()
  t.teardown(() => broker.close())
  const encoder = new EventEncoder()
  const message = await broker.publish('s', { n: 1 })
  const bytes = encoder.eventBytes(message)
  t.equal(bytes.buffer.byteLength, bytes.length, 'an ArrayBuffer of its own, exactly its size')
  t.equal(encoder.eventBytes(message), bytes, 'encoded once')
  t.equal(encoder.eventsBytes([message, message]).toString(), `{"events":[${bytes},${bytes}]}`)
})
