import type { Test } from 'tap'
import { MemoryBroker, MemorySessionStore, rtCore } from '@rt/core'
import { testFastify } from '@rt/core/testing'
import t from 'tap'
import { rtLongPoll, type LongPollOptions } from '../src/index.js'
import { AnyCableLongPolling } from './anycable-client.js'
import { FAST, connectTo, payloads, poll, pubsub, serve, sleep, subscribe, types, until } from './helpers.js'

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

/** Two apps sharing one memory broker and one memory session store, as two processes share Redis. */
async function twoProcesses(t: Test, lp: LongPollOptions) {
  const broker = new MemoryBroker()
  const store = new MemorySessionStore()
  t.teardown(async () => {
    await store.close()
    await broker.close()
  })
  const start = async () => {
    const app = testFastify({ forceCloseConnections: true })
    await app.register(rtCore, { broker, sessionStore: store, publicStreams: true })
    await app.register(rtLongPoll, lp)
    const url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/lp`
    t.teardown(() => app.close())
    return { app, url }
  }
  return { store, a: await start(), b: await start() }
}

t.test('two processes sharing the broker and the session store behave as one server', async (t) => {
  const { a, b } = await twoProcesses(t, { ...FAST, pollInterval: 30 })
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

t.test('overlapping requests of one session on two processes: every command runs once, nothing is delivered twice', async (t) => {
  const { store, a, b } = await twoProcesses(t, { pollInterval: 30, flushInterval: 0, keepaliveTimeout: 5 })
  const { id } = await connectTo(a.url, ['feed'])
  const lines: Array<Record<string, unknown>> = []
  let n = 0
  for (let round = 0; round < 30; round++) {
    // Two requests at once, on two processes, each subscribing to its own stream, while the feed is written.
    const first = poll(a.url, id, subscribe(pubsub(`a${round}`)))
    const second = poll(b.url, id, subscribe(pubsub(`b${round}`)))
    await a.app.rt.publish('feed', { n: ++n })
    for (const answer of await Promise.all([first, second])) {
      t.equal(answer.status, 200)
      lines.push(...answer.lines)
    }
  }
  const expected = Array.from({ length: 30 }, (_, round) => [pubsub(`a${round}`), pubsub(`b${round}`)]).flat().sort()
  const confirmed = () => lines.filter((line) => line.type === 'confirm_subscription').map((line) => String(line.identifier))
  for (let i = 0; i < 50 && (confirmed().length < expected.length || payloads(lines).length < n); i++) {
    lines.push(...(await poll(i % 2 === 0 ? a.url : b.url, id)).lines)
  }
  t.same(confirmed().sort(), expected, 'every subscribe ran and was confirmed exactly once')
  t.same(Object.keys((await store.get(id))!.subscriptions).sort(), [...expected, pubsub('feed')].sort(), 'and is saved')
  t.same(payloads(lines), Array.from({ length: n }, (_, i) => ({ n: i + 1 })), 'every message once, in order')
})

t.test('a command superseding a held poll never waits out the release timeout', async (t) => {
  const { a, b } = await twoProcesses(t, { pollInterval: 30, flushInterval: 0, keepaliveTimeout: 5 })
  const { id } = await connectTo(a.url, ['room'])
  for (let round = 0; round < 20; round++) {
    const [holder, other] = round % 2 === 0 ? [a, b] : [b, a]
    const held = poll(holder.url, id)
    await until(() => holder.app.rt.hub.listeners('room') === 1, 'a held poll')
    const command = await poll(other.url, id, subscribe(pubsub(`s${round}`)))
    t.same(types(command.lines), ['confirm_subscription'])
    t.equal((await held).text, '')
  }
  for (const { app } of [a, b]) {
    t.match(await app.rt.metrics.text(), /^long_poll_release_timeouts_total 0$/m, 'no request waited out a release it had missed')
  }
})

t.test("a poll takes over a session whose holder's process died: it waits out the release, counts it, and serves the session", async (t) => {
  const { app, url } = await serve(t, FAST)
  const { id } = await connectTo(url, ['room'])
  // A request on a process that died since claimed the session and never released it.
  t.ok(await app.rt.hub.store.claim(id, 60_000), 'the dead request claimed the session')
  await app.rt.publish('room', { n: 1 })
  const taken = await poll(url, id)
  t.equal(taken.status, 200)
  t.same(payloads(taken.lines), [{ n: 1 }], 'the session is served once the release wait ran out')
  t.match(await app.rt.metrics.text(), /^long_poll_release_timeouts_total 1$/m, 'the take-over is counted')
  await app.rt.publish('room', { n: 2 })
  t.same(payloads((await poll(url, id)).lines), [{ n: 2 }], 'and the session goes on from there')
})
