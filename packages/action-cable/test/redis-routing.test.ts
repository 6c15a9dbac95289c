import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { Broker } from '@rt/core'
import { RedisBroker, RedisSessionStore } from '@rt/redis'
import { upstreamStream } from '../src/index.js'
import { startCable } from './fixture/cable.mjs'
import { eventually, poll, pollUntil, room, speak, subscribe } from './helpers.js'
import { redisNode, redisPrefix } from './redis-node.js'

const cable = await startCable()
t.teardown(() => cable.stop())
const prefix = redisPrefix(t, 'acr')

/** One rt process on the shared Redis: @rt/core, the bridge and long polling. */
const node = (t: { teardown(fn: () => unknown): void }, wrap?: (broker: Broker) => Broker): Promise<{ app: FastifyInstance; url: string }> =>
  redisNode(t, { prefix, bridge: { url: cable.url, origin: cable.origin, commandTimeout: 5000 }, ...(wrap === undefined ? {} : { wrap }) })

t.test('with Redis, commands polled on the process without the upstream socket are routed to its holder', async (t) => {
  const a = await node(t)
  const b = await node(t)
  const connect = await poll(a.url, { cookie: 'user=ivy' })
  t.equal(connect.status, 200)
  const id = connect.id!
  t.equal(a.app.rtActionCable.socketCount, 1, 'A holds the session\'s upstream socket')

  // Every later request lands on B.
  const chat = room('routed')
  const subscribed = await poll(b.url, { id, lines: [subscribe(chat)] })
  t.equal(subscribed.status, 200)
  const confirmed = subscribed.messages.some((m) => m.type === 'confirm_subscription' && m.identifier === chat)
    ? subscribed.messages
    : await pollUntil(b.url, id, (m) => m.type === 'confirm_subscription')
  t.ok(confirmed.some((m) => m.type === 'confirm_subscription' && m.identifier === chat), 'subscribe routed to A, confirmed to the poller on B')
  t.equal(b.app.rtActionCable.socketCount, 0, 'B opened no upstream socket')
  await cable.broadcast({ room: 'routed', data: { n: 1 } })
  await pollUntil(b.url, id, (m) => m.identifier === chat && (m.message as { n?: number } | undefined)?.n === 1)
  t.pass('a broadcast reaches the poller on B')

  const isEcho = (text: string) => (m: Record<string, unknown>): boolean =>
    m.identifier === chat && (m.message as { user?: string; text?: string } | undefined)?.text === text
  const spoken = await poll(b.url, { id, lines: [speak(chat, 'over there')] })
  t.equal(spoken.status, 200)
  t.notOk(spoken.messages.some((m) => m.type === 'error'), 'no error line for the routed action')
  if (!spoken.messages.some(isEcho('over there'))) await pollUntil(b.url, id, isEcho('over there'))
  t.pass('speak round trip through A\'s socket')

  const left = await poll(b.url, { id, lines: [{ command: 'unsubscribe', identifier: chat }] })
  t.equal(left.status, 200)
  t.notOk(left.messages.some((m) => m.type === 'error'), 'no error line for the routed unsubscribe')
  // A subscription of another room on the same socket tells when the upstream has handled the unsubscribe (commands run in order).
  const marker = room('routed-marker')
  await poll(b.url, { id, lines: [subscribe(marker)] })
  await cable.broadcast({ room: 'routed', data: { n: 2 } })
  await cable.broadcast({ room: 'routed-marker', data: { n: 3 } })
  const after = await pollUntil(b.url, id, (m) => m.identifier === marker && 'message' in m)
  t.notOk(after.some((m) => m.identifier === chat && 'message' in m), 'nothing of the unsubscribed room after the unsubscribe')
  t.equal(a.app.rtActionCable.socketCount + b.app.rtActionCable.socketCount, 1, 'still one upstream socket')
})

/**
 * The broker of a process whose answers from other processes (the replies to
 * routed commands) come late: each is held until `ready()` (bounded), as over
 * a slow network. Everything else passes through.
 */
function lateReplies(ready: () => Promise<boolean>): (broker: Broker) => Broker {
  return (broker) => new Proxy(broker, {
    get(target, property) {
      if (property === 'subscribe') {
        return (stream: string, listener: Parameters<Broker['subscribe']>[1]) => target.subscribe(stream, !stream.endsWith(':reply') ? listener : (message) => {
          void (async () => {
            const deadline = Date.now() + 10_000
            while (!(await ready()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
            listener(message)
          })()
        })
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    }
  })
}

t.test('with Redis, a message right behind confirm_subscription reaches a poller on the other process, however late the confirmation comes back', async (t) => {
  const greeted = JSON.stringify({ channel: 'ChatChannel', room: 'routed-greet', greet: true })
  const store = new RedisSessionStore({ url: 'redis://127.0.0.1:6379', keyPrefix: prefix })
  const reader = new RedisBroker({ url: 'redis://127.0.0.1:6379', keyPrefix: prefix })
  t.teardown(async () => {
    await store.close()
    await reader.close()
  })
  const greet: { stream?: string } = {}
  // B hears A's confirmation only once the message sent right behind it is in rt's broker: the window, made wide.
  const greetingStored = async (): Promise<boolean> => greet.stream !== undefined && (await reader.history(greet.stream, { since: 0 })).messages.length > 0
  const a = await node(t)
  const b = await node(t, lateReplies(greetingStored))
  const connect = await poll(a.url, { cookie: 'user=jack' })
  const id = connect.id!
  const upstream = (await store.get(id))?.sourceState?.upstream as string
  greet.stream = upstreamStream(upstream, greeted)
  const subscribed = await poll(b.url, { id, lines: [subscribe(greeted)] })
  t.ok(subscribed.messages.some((m) => m.type === 'confirm_subscription'), 'confirmed')
  t.ok(await greetingStored(), 'the greeting reached rt before the confirmation reached B')
  const isGreeting = (m: Record<string, unknown>): boolean => m.identifier === greeted && 'message' in m
  const seen = subscribed.messages.some(isGreeting) ? subscribed.messages : await pollUntil(b.url, id, isGreeting, 4)
  t.same(seen.find(isGreeting)?.message, { greeting: 'welcome to routed-greet', user: 'jack' })
})

t.test('with Redis, an upstream disconnect (reconnect: false) reaches a poller on the process without the socket', async (t) => {
  const a = await node(t)
  const b = await node(t)
  const connect = await poll(a.url, { cookie: 'user=nora', lines: [subscribe(room('routed-kick'))] })
  const id = connect.id!
  await cable.post('/kick', { user: 'nora', reason: 'banned' })
  await eventually(() => a.app.rtActionCable.socketCount === 0, 'A\'s upstream socket closed')
  const next = await poll(b.url, { id })
  t.equal(next.status, 200)
  t.same(next.messages.filter((m) => m.type === 'disconnect'), [{ type: 'disconnect', reason: 'banned', reconnect: false }])
  t.equal(a.app.rtActionCable.socketCount + b.app.rtActionCable.socketCount, 0, 'no process re-opened it')
})
