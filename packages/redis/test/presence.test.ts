import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { rtCore, type Outgoing, type ServerMessage, type Session } from '@rt/core'
import { presenceStoreContract } from '@rt/core/testing'
import { RedisBroker, RedisSessionStore } from '../src/index.js'
import { admin, cleanup, REDIS_URL, recorder, uniquePrefix, until } from './helpers.js'

// Presence and whispers across nodes: each node its own Fastify app, broker and Redis connections, one Redis.
const redis = await admin(t)
const prefix = uniquePrefix('presence')
t.teardown(() => cleanup(redis, prefix))

presenceStoreContract(t, {
  async create() {
    const space = `${prefix}contract:${Math.random().toString(36).slice(2)}:`
    const one = new RedisBroker({ url: REDIS_URL, keyPrefix: space, logger: recorder().logger })
    const two = new RedisBroker({ url: REDIS_URL, keyPrefix: space, logger: recorder().logger })
    t.teardown(async () => { await one.close(); await two.close() })
    return [one.presence, two.presence]
  }
})

async function node(t: Test, space: string): Promise<FastifyInstance> {
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: space, logger: recorder().logger })
  const sessionStore = new RedisSessionStore({ url: REDIS_URL, keyPrefix: space, logger: recorder().logger })
  const app = Fastify()
  app.addHook('onClose', async () => {
    await broker.close()
    await sessionStore.close()
  })
  await app.register(rtCore, { broker, sessionStore, publicStreams: true, presenceTtl: 0.3, authenticate: (r) => ({ user: r.headers['x-user'] }) })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

class Sink {
  readonly messages: ServerMessage[] = []
  send(outgoing: Outgoing): void {
    this.messages.push(outgoing.message)
  }
  presence(): unknown[] {
    return this.messages.filter((m) => 'type' in m && m.type === 'presence').map((m) => (m as { message: unknown }).message)
  }
  data(): unknown[] {
    return this.messages.filter((m) => !('type' in m) || m.type === undefined).map((m) => (m as { message: unknown }).message)
  }
}

const room = JSON.stringify({ channel: '$pubsub', stream_name: 'room' })

async function open(app: FastifyInstance, user: string): Promise<{ session: Session; sink: Sink }> {
  const sink = new Sink()
  const request = { headers: { 'x-user': user }, query: {}, url: '/', raw: { url: '/' } } as unknown as FastifyRequest
  const connected = await app.rt.hub.connect(request, sink)
  if (!('session' in connected)) throw new Error('rejected')
  await connected.session.handle({ command: 'subscribe', identifier: room })
  return { session: connected.session, sink }
}

t.test('presence and whispers across two nodes; one leave when both sweep', async (t) => {
  const space = `${prefix}nodes:`
  const [a, b] = [await node(t, space), await node(t, space)]
  const alice = await open(a, 'alice')
  const bob = await open(b, 'bob')
  t.same(await alice.session.handle({ command: 'join', identifier: room, presence: { id: 'alice', info: { on: 'a' } } }), { ok: true })
  t.same(await bob.session.handle({ command: 'join', identifier: room, presence: { id: 'bob', info: { on: 'b' } } }), { ok: true })
  await until(() => alice.sink.presence().length === 2, 'both joins on A')
  t.same(alice.sink.presence(), [{ type: 'join', id: 'alice', info: { on: 'a' } }, { type: 'join', id: 'bob', info: { on: 'b' } }])
  await bob.session.handle({ command: 'presence', identifier: room })
  const info = bob.sink.presence().at(-1) as { type: string; total: number; records: Array<{ id: string }> }
  t.equal(info.type, 'info')
  t.equal(info.total, 2, 'B sees the record joined on A')

  await alice.session.handle({ command: 'whisper', identifier: room, data: { typing: 'alice' } })
  await until(() => bob.sink.data().length > 0, 'the whisper on B')
  t.same(bob.sink.data(), [{ typing: 'alice' }])
  await a.rt.publish('room', { marker: 1 })
  await until(() => alice.sink.data().length > 0, 'the marker on A')
  t.same(alice.sink.data(), [{ marker: 1 }], 'the whisper did not come back to its sender')
  t.same((await b.rt.broker.history('room', { since: 0 })).messages.map((m) => m.data), [{ marker: 1 }], 'whispers and presence events are not kept in history')

  // Bob's session ends on B; both nodes sweep, the leave is announced once.
  await bob.session.close()
  await until(() => alice.sink.presence().length === 3, "bob's leave on A")
  await new Promise((resolve) => setTimeout(resolve, 600))
  await Promise.all([a.rt.hub.presence.sweep(), b.rt.hub.presence.sweep()])
  t.same(alice.sink.presence().slice(2), [{ type: 'leave', id: 'bob' }], 'exactly one leave')

  // A remote disconnect posted to A ends alice's session on A and a session of hers on B.
  const alsoAlice = await open(b, 'alice')
  await a.rt.hub.disconnectRemote('{"user":"alice"}', false)
  await until(() => alsoAlice.session.isClosed && alice.session.isClosed, 'both of alice sessions closed')
  t.same(alsoAlice.sink.messages.at(-1), { type: 'disconnect', reason: 'remote', reconnect: false })
})
