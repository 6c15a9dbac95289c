import { MemoryBroker, MemorySessionStore, rtCore } from '@rt/core'
import Fastify from 'fastify'
import t from 'tap'
import { rtLongPoll } from '../src/index.js'
import { AnyCableLongPolling } from './anycable-client.js'
import { FAST, connectTo, payloads, poll, pubsub, serve, sleep, subscribe, until } from './helpers.js'

t.test('a newer poll ends the held one with an empty answer and receives what follows', async (t) => {
  const { app, url } = await serve(t, { ...FAST, pollInterval: 30 })
  const { id } = await connectTo(url, ['room'])
  const first = poll(url, id)
  await until(() => app.rt.hub.listeners('room') === 1, 'the first poll to be held')
  const second = poll(url, id)
  const ended = await first
  t.equal(ended.status, 200)
  t.equal(ended.text, '', 'the older poll is answered empty')
  await until(() => app.rt.hub.listeners('room') === 1, 'the second poll to be held')
  await app.rt.publish('room', { n: 1 })
  const got = await second
  t.same(payloads(got.lines), [{ n: 1 }])
  t.equal(app.rt.hub.listeners('room'), 0, 'no poll is held any more')
})

t.test('a poll that gathers messages when a newer one arrives leaves them all to the newer one', async (t) => {
  const { app, url } = await serve(t, { ...FAST, pollInterval: 30, flushInterval: 60_000 })
  const { id } = await connectTo(url, ['room'])
  const first = poll(url, id)
  await until(() => app.rt.hub.listeners('room') === 1, 'the first poll to be held')
  await app.rt.publish('room', { n: 1 })
  await app.rt.publish('room', { n: 2 })
  // The first poll is now in its (long) flush interval; a second poll carrying a command replaces it.
  const second = poll(url, id, JSON.stringify({ command: 'pong' }))
  t.equal((await first).text, '', 'nothing is split between the two polls')
  await until(() => app.rt.hub.listeners('room') === 1, 'the second poll to be held')
  await app.close()
  t.same(payloads((await second).lines), [{ n: 1 }, { n: 2 }], 'the newer poll serves everything, once')
})

t.test('commands of polls sent back to back are all applied, in order', async (t) => {
  const { url } = await serve(t, { ...FAST, pollInterval: 0.2, flushInterval: 0 })
  const { id } = await connectTo(url)
  const polls = ['a', 'b', 'c', 'd'].map((stream) => poll(url, id, subscribe(pubsub(stream))))
  const answers = await Promise.all(polls)
  const seen = answers.flatMap((answer) => answer.lines)
  // Every confirmation reaches the client once, whichever request carried it out.
  let last = await poll(url, id)
  const all = [...seen, ...last.lines]
  while (all.filter((line) => line.type === 'confirm_subscription').length < 4 && last.status === 200) {
    last = await poll(url, id)
    all.push(...last.lines)
  }
  t.same(all.filter((line) => line.type === 'confirm_subscription').map((line) => line.identifier),
    ['a', 'b', 'c', 'd'].map(pubsub))
})

t.test('two processes sharing the broker and the session store behave as one server', async (t) => {
  const broker = new MemoryBroker()
  const store = new MemorySessionStore()
  t.teardown(async () => {
    await store.close()
    await broker.close()
  })
  const start = async () => {
    const app = Fastify({ forceCloseConnections: true })
    await app.register(rtCore, { broker, sessionStore: store, publicStreams: true })
    await app.register(rtLongPoll, { ...FAST, pollInterval: 30 })
    const url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/lp`
    t.teardown(() => app.close())
    return { app, url }
  }
  const a = await start()
  const b = await start()
  const { id } = await connectTo(a.url, ['room'])
  const onA = poll(a.url, id)
  await until(() => a.app.rt.hub.listeners('room') === 1, 'the poll on A to be held')
  const onB = poll(b.url, id)
  t.equal((await onA).text, '', 'the poll held on A ends when B gets a poll for the session')
  await until(() => b.app.rt.hub.listeners('room') === 1, 'the poll on B to be held')
  await a.app.rt.publish('room', { n: 1 })
  t.same(payloads((await onB).lines), [{ n: 1 }], 'published on A, delivered by B')
  await a.app.rt.publish('room', { n: 2 })
  const next = poll(a.url, id)
  t.same(payloads((await next).lines), [{ n: 2 }], 'the next poll on A continues where B stopped')
})

t.test("AnyCable's client aborting held polls to send commands loses and repeats nothing", async (t) => {
  // The flush interval is far longer than the client's send buffer, so every abort
  // lands while the poll is held or gathering messages, before its answer is written.
  const { app, url } = await serve(t, { pollInterval: 5, flushInterval: 150, keepaliveTimeout: 5 })
  const client = new AnyCableLongPolling(url, { cooldown: 5, sendBuffer: 5 })
  t.teardown(() => client.close())
  await client.open()
  client.send({ command: 'subscribe', identifier: pubsub('feed') })
  await until(() => client.frames.some((frame) => frame.type === 'confirm_subscription'), 'the subscription')
  let n = 0
  const publish = async (count: number) => {
    for (let i = 0; i < count; i++) await app.rt.publish('feed', { n: ++n })
  }
  for (let round = 0; round < 10; round++) {
    await until(() => app.rt.hub.listeners('feed') === 1, 'a held poll')
    // Messages reach the held poll, then the client aborts it to send a command.
    await publish(3)
    client.send({ command: 'message', identifier: pubsub('feed'), data: JSON.stringify({ action: 'nothing' }) })
    // More messages while the aborted poll is released and the new one takes over.
    await publish(round % 3)
    await sleep(round % 4)
    await publish(2)
    await until(() => payloads(client.frames).length >= n, `round ${round}`)
  }
  const received = payloads(client.frames).map((message) => (message as { n: number }).n)
  t.same(received, Array.from({ length: n }, (_, i) => i + 1), 'every message once, in order')
  t.ok(client.aborts >= 10, `the client aborted ${client.aborts} polls`)
  t.same(client.errors, [])
})
