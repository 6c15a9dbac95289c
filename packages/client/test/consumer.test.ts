import t from 'tap'
import { createConsumer, type Consumer, type ConsumerOptions } from '../src/index.js'
import type { TransportName } from '../src/types.js'
import { startServer, until } from './server.js'

function consumer(t: { teardown(fn: () => unknown): void }, options: ConsumerOptions): Consumer {
  const created = createConsumer({ backoff: { min: 20, max: 200 }, sseWelcomeTimeout: 1000, ...options })
  t.teardown(() => created.close())
  return created
}

for (const transport of ['sse', 'long-poll'] as TransportName[]) {
  t.test(`${transport}: subscribe, receive, perform, transmit, unsubscribe`, async (t) => {
    const { app, url } = await startServer(t)
    const transports: Array<TransportName | undefined> = []
    const rt = consumer(t, { url, transports: [transport], onTransport: (name) => transports.push(name) })
    const received: unknown[] = []
    let connected = 0
    const echo = rt.subscribe({ channel: 'Echo' }, { received: (message) => received.push(message), connected: () => connected++ })
    await until(() => connected === 1, 'confirmation')
    t.equal(rt.transport, transport)
    echo.perform('say', { text: 'hello' })
    echo.perform('whisper', { text: 'psst' })
    await until(() => received.length === 2, 'echo and transmission')
    t.same(received.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))), [{ private: 'psst' }, { text: 'hello' }])
    t.same(rt.positions.get('echo')?.offset, 1)
    const stream: unknown[] = []
    const pub = rt.subscribe({ stream: 'news' }, { received: (message) => stream.push(message) })
    await until(() => app.rt.hub.listeners('news') === 1, 'public stream subscription')
    await app.rt.publish('news', 'extra!')
    await until(() => stream.length === 1, 'public stream message')
    t.throws(() => rt.subscribe({ stream: 'news' }), /already subscribed/)
    pub.unsubscribe()
    pub.unsubscribe()
    pub.perform('ignored')
    await until(() => app.rt.hub.listeners('news') === 0, 'unsubscribe reaches the server')
    t.same(transports.slice(0, 1), [transport])
  })
}

t.test('falls back to long polling when SSE is refused, and reports rejections', async (t) => {
  const { url } = await startServer(t)
  const rt = consumer(t, { url, ssePath: '/nothing-here' })
  let rejected = false
  let connected = false
  rt.subscribe({ channel: 'Echo' }, { connected: () => { connected = true } })
  rt.subscribe({ channel: 'Nope' }, { rejected: () => { rejected = true } })
  await until(() => connected && rejected, 'fallback connection')
  t.equal(rt.transport, 'long-poll')
})

t.test('falls back when the event stream shows no welcome (a buffering proxy), tries SSE again later', async (t) => {
  let buffering = true
  const { url } = await startServer(t, {}, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      if (!buffering || !request.url.startsWith('/events') || request.headers['x-rt-sid'] !== undefined) return
      // Looks like a proxy that holds the stream back: headers, then nothing.
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
      reply.raw.flushHeaders()
    })
  })
  const rt = consumer(t, { url, sseWelcomeTimeout: 300, retrySseAfter: 500 })
  const transports: Array<TransportName | undefined> = []
  const received: unknown[] = []
  rt.subscribe({ channel: 'Echo' }, { received: (message) => received.push(message) })
  await until(() => rt.transport === 'long-poll', 'fallback')
  buffering = false
  await until(() => rt.transport === 'sse', 'SSE again')
  transports.push(rt.transport)
  t.same(transports, ['sse'])
})

t.test('no message lost or repeated across forced transport switches while 500 messages flow', async (t) => {
  const { app, url } = await startServer(t)
  const rt = consumer(t, { url })
  const offsets: number[] = []
  let connected = 0
  rt.subscribe({ stream: 'flow' }, { received: (_message, meta) => offsets.push(meta.offset!), connected: () => connected++ })
  await until(() => connected === 1, 'subscribed')
  const switches: TransportName[] = ['long-poll', 'sse', 'long-poll', 'sse']
  for (let i = 1; i <= 500; i++) {
    await app.rt.publish('flow', { i })
    if (i % 100 === 0) {
      const next = switches.shift()
      if (next !== undefined) rt.useTransport(next)
    }
    if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 2))
  }
  await until(() => offsets.length >= 500, '500 messages', 20_000)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(offsets.length, 500, 'no duplicates')
  t.same(offsets, Array.from({ length: 500 }, (_, i) => i + 1), 'every message, in order')
  t.ok(connected >= 5, 'reconnected on every switch')
})

t.test('resumes after the server drops every connection, with what was published meanwhile', async (t) => {
  const { app, url } = await startServer(t)
  for (const transport of ['sse', 'long-poll'] as TransportName[]) {
    const rt = consumer(t, { url, transports: [transport] })
    const texts: unknown[] = []
    let disconnected = 0
    rt.subscribe({ stream: `drop-${transport}` }, { received: (message) => texts.push(message), disconnected: () => disconnected++ })
    await until(() => rt.transport === transport, 'connected')
    await app.rt.publish(`drop-${transport}`, 'before')
    await until(() => texts.length === 1, 'first message')
    app.server.closeAllConnections()
    await app.rt.publish(`drop-${transport}`, 'while away 1')
    await app.rt.publish(`drop-${transport}`, 'while away 2')
    await until(() => texts.length === 3, `${transport}: missed messages`)
    await app.rt.publish(`drop-${transport}`, 'after')
    await until(() => texts.length === 4, `${transport}: live again`)
    t.same(texts, ['before', 'while away 1', 'while away 2', 'after'], transport)
    t.ok(disconnected >= 1 || transport === 'long-poll', `${transport}: disconnection reported`)
    rt.close()
  }
})

t.test('a history that no longer covers the position is reported', async (t) => {
  const { app, url } = await startServer(t, { history: { historyLimit: 2 } })
  const rt = consumer(t, { url, transports: ['sse'] })
  const texts: unknown[] = []
  let rejectedHistory = 0
  rt.subscribe({ stream: 'short' }, { received: (message) => texts.push(message), rejectedHistory: () => rejectedHistory++ })
  await until(() => app.rt.hub.listeners('short') === 1, 'subscribed')
  await app.rt.publish('short', 1)
  await until(() => texts.length === 1, 'first')
  rt.useTransport('long-poll')
  // While it reconnects, more is published than the history keeps: the long-poll session's catch-up
  // still delivers what is retained, and an SSE resume says reject_history.
  rt.useTransport('sse')
  app.server.closeAllConnections()
  for (let i = 2; i <= 6; i++) await app.rt.publish('short', i)
  await until(() => rejectedHistory >= 1 || texts.includes(6), 'resume')
  await until(() => texts.includes(6) || rejectedHistory >= 1, 'live again')
  t.ok(rejectedHistory >= 1, 'the app is told that messages were missed')
})

t.test('an unauthorized client stops instead of retrying', async (t) => {
  let attempts = 0
  const { url } = await startServer(t, { authenticate: () => { attempts++; return false } })
  for (const transport of ['sse', 'long-poll'] as TransportName[]) {
    attempts = 0
    const rt = consumer(t, { url, transports: [transport] })
    let disconnected = 0
    rt.subscribe({ channel: 'Echo' }, { disconnected: () => disconnected++ })
    await until(() => attempts === 1, 'one attempt')
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.equal(attempts, 1, `${transport}: no retry after 401`)
    t.throws(() => rt.subscribe({ stream: 'x' }), /closed/)
    t.equal(disconnected, 0)
  }
})

t.test('options', async (t) => {
  t.throws(() => createConsumer({ url: 'http://x', transports: [] }), /transports/)
})
