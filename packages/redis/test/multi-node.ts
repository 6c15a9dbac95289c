import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { rtCore } from '@rt/core'
import { rtLongPoll } from '@rt/long-poll'
import { rtSse } from '@rt/sse'
import { RedisBroker, RedisSessionStore, type RedisConnectionOptions } from '../src/index.js'
import { clientId, eventually, recorder, until } from './helpers.js'
import { longPoll, openEvents, payloads, subscribeTo, type EventStream } from './http.js'

/** Where the nodes' Redis is, and (on a single server) a plain client for CLIENT KILL. */
export interface MultiNodeSetup {
  connection: RedisConnectionOptions
  prefix: string
  admin?: Redis
}

interface Node {
  app: FastifyInstance
  base: string
}

/**
 * Three Fastify instances with @rt/sse and @rt/long-poll on one Redis (a server or a
 * cluster) behave as one server: no sticky sessions, nothing lost.
 */
export function multiNodeSuite(t: Test, { connection, prefix, admin }: MultiNodeSetup): void {
async function node(t: Test, connectionName = 'rt'): Promise<Node> {
  const broker = new RedisBroker({ ...connection, keyPrefix: prefix, logger: recorder().logger, connectionName })
  const sessionStore = new RedisSessionStore({ ...connection, keyPrefix: prefix, logger: recorder().logger })
  const app = Fastify({ forceCloseConnections: true })
  app.addHook('onClose', async () => {
    await broker.close()
    await sessionStore.close()
  })
  await app.register(rtCore, { broker, sessionStore, publicStreams: true })
  await app.register(rtSse, { pingInterval: 60_000 })
  await app.register(rtLongPoll, { pollInterval: 2, flushInterval: 20, keepaliveTimeout: 5 })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, base }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
const numbers = (stream: EventStream): number[] => stream.messages.map((event) => (JSON.parse(event.data) as { n: number }).n)

/** Opens an SSE stream of one public stream and waits for its subscription to be confirmed. */
async function sse(base: string, stream: string, lastEventId?: string): Promise<EventStream> {
  const events = await openEvents(`${base}/events?stream=${stream}`, lastEventId === undefined ? {} : { 'last-event-id': lastEventId })
  await until(() => events.events.some((event) => event.event === 'confirm_subscription'), 'the SSE subscription')
  return events
}

t.test('publish on A: received on B over SSE and on C over long polling', async (t) => {
  const [a, b, c] = [await node(t), await node(t), await node(t)]
  const onB = await sse(b.base, 'room')
  t.teardown(() => onB.close())
  const connected = await longPoll(`${c.base}/lp`, undefined, subscribeTo('room'))
  t.equal(connected.status, 200)
  const id = connected.id!
  for (let n = 1; n <= 20; n++) await a.app.rt.publish('room', { n })
  await until(() => onB.messages.length >= 20, 'SSE delivery on B')
  t.same(numbers(onB), range(1, 20))
  const polled: unknown[] = []
  while (polled.length < 20) polled.push(...payloads((await longPoll(`${c.base}/lp`, id)).lines))
  t.same(polled, range(1, 20).map((n) => ({ n })), 'long polling on C: every message once, in order')
})

t.test('a long-poll session created on A and polled alternately on B and C receives every message once, in order', async (t) => {
  const [a, b, c] = [await node(t), await node(t), await node(t)]
  const nodes = [a, b, c]
  const connected = await longPoll(`${a.base}/lp`, undefined, subscribeTo('shared-session'))
  const id = connected.id!
  const polled: unknown[] = []
  let n = 0
  for (let round = 0; round < 12; round++) {
    for (let i = 0; i < 3; i++) await nodes[(round + i) % 3]!.app.rt.publish('shared-session', { n: ++n })
    const target = round % 2 === 0 ? b : c
    while (polled.length < n) {
      const answer = await longPoll(`${target.base}/lp`, id)
      t.equal(answer.status, 200)
      polled.push(...payloads(answer.lines))
    }
  }
  t.same(polled, range(1, n).map((i) => ({ n: i })))
})

t.test('an SSE client reconnecting to another node with Last-Event-ID resumes without gaps', async (t) => {
  const [a, b, c] = [await node(t), await node(t), await node(t)]
  const first = await sse(a.base, 'resume')
  for (let n = 1; n <= 5; n++) await b.app.rt.publish('resume', { n })
  await until(() => first.messages.length === 5, 'the first five')
  const lastId = first.messages[4]!.id!
  first.close()
  for (let n = 6; n <= 10; n++) await c.app.rt.publish('resume', { n })
  const resumed = await openEvents(`${b.base}/events?stream=resume`, { 'last-event-id': lastId })
  t.teardown(() => resumed.close())
  await until(() => resumed.messages.length === 5, 'the missed five')
  await a.app.rt.publish('resume', { n: 11 })
  await until(() => resumed.messages.length === 6, 'live again')
  t.same(numbers(resumed), range(6, 11))
})

t.test('a node closed mid-stream: its clients reconnect elsewhere and lose nothing', async (t) => {
  const [a, b, c] = [await node(t), await node(t), await node(t)]
  const onA = await sse(a.base, 'failover')
  let n = 0
  for (; n < 10; n++) await c.app.rt.publish('failover', { n: n + 1 })
  await until(() => onA.messages.length === 10, 'delivery on A')
  const closing = a.app.close()
  for (; n < 20; n++) await c.app.rt.publish('failover', { n: n + 1 })
  await closing
  await until(() => onA.ended, 'the stream on A to end')
  const lastId = onA.messages.at(-1)!.id!
  const onB = await openEvents(`${b.base}/events?stream=failover`, { 'last-event-id': lastId })
  t.teardown(() => onB.close())
  for (; n < 25; n++) await c.app.rt.publish('failover', { n: n + 1 })
  const received = (): number[] => [...numbers(onA), ...numbers(onB)]
  await until(() => received().length >= 25, 'every message across both nodes')
  t.same(received(), range(1, 25))
})

// CLIENT KILL needs the one server the subscriber connection is on.
if (admin !== undefined) t.test("CLIENT KILL of a node's Redis subscriber connection mid-stream: its SSE and long-poll clients lose nothing", async (t) => {
  const name = `rt-test-cluster-${process.pid}`
  const [a, b] = [await node(t), await node(t, name)]
  const onB = await sse(b.base, 'killed')
  t.teardown(() => onB.close())
  const id = (await longPoll(`${b.base}/lp`, undefined, subscribeTo('killed'))).id!
  for (let n = 1; n <= 60; n++) {
    await a.app.rt.publish('killed', { n })
    if (n === 20 || n === 40) {
      await eventually(async () => (await clientId(admin, `${name}:subscriber`)) !== undefined, 'the subscriber connection')
      await admin.client('KILL', 'ID', (await clientId(admin, `${name}:subscriber`))!)
    }
  }
  await until(() => onB.messages.length >= 60, 'SSE delivery on B')
  t.same(numbers(onB), range(1, 60), 'SSE: in order, none lost or repeated')
  const polled: unknown[] = []
  while (polled.length < 60) polled.push(...payloads((await longPoll(`${b.base}/lp`, id)).lines))
  t.same(polled, range(1, 60).map((n) => ({ n })), 'long polling: in order, none lost or repeated')
})
}
