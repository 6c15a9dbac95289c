import type { Socket } from 'node:net'
import { EventSource } from 'eventsource'
import t from 'tap'
import { startApp } from './helpers.js'

interface Received {
  data: string
  lastEventId: string
}

/** An `eventsource` client that records its messages, opens and errors. */
function client(url: string): { source: EventSource; messages: Received[]; opens: () => number; errors: () => number; waitFor(n: number): Promise<void> } {
  const source = new EventSource(url)
  const messages: Received[] = []
  let opens = 0
  let errors = 0
  const waiters: Array<() => void> = []
  source.addEventListener('open', () => { opens++ })
  source.addEventListener('error', () => { errors++ })
  source.addEventListener('message', (event) => {
    messages.push({ data: event.data as string, lastEventId: event.lastEventId })
    for (const wake of waiters.splice(0)) wake()
  })
  return {
    source,
    messages,
    opens: () => opens,
    errors: () => errors,
    async waitFor(n) {
      while (messages.length < n) await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
}

/** Sockets the server accepted, so that the test can drop them from the server side. */
function serverSockets(app: { server: { on(event: 'connection', listener: (socket: Socket) => void): unknown } }): Set<Socket> {
  const sockets = new Set<Socket>()
  app.server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  return sockets
}

t.test('the eventsource package: live messages, then its own reconnect with Last-Event-ID after the server drops it', async (t) => {
  const { app, base } = await startApp(t)
  const sockets = serverSockets(app)
  const es = client(`${base}/events?stream=es`)
  t.teardown(() => es.source.close())
  const welcomed = new Promise((resolve) => es.source.addEventListener('welcome', resolve, { once: true }))
  const confirmed = new Promise((resolve) => es.source.addEventListener('confirm_subscription', resolve, { once: true }))
  await Promise.all([welcomed, confirmed])
  for (let i = 1; i <= 3; i++) await app.rt.publish('es', { n: i })
  await es.waitFor(3)
  const { epoch } = await app.rt.broker.position('es')
  t.equal(es.messages[2]!.lastEventId, `3/${epoch}/es`)

  // The server drops the connection; messages are published while the client is away.
  const dropped = new Promise((resolve) => es.source.addEventListener('error', resolve, { once: true }))
  for (const socket of sockets) socket.destroy()
  await dropped
  for (let i = 4; i <= 6; i++) await app.rt.publish('es', { n: i })

  // eventsource reconnects by itself (after its default 3 s) with Last-Event-ID: 3/<epoch>/es.
  await es.waitFor(6)
  t.same(es.messages.map((m) => JSON.parse(m.data) as unknown), [1, 2, 3, 4, 5, 6].map((n) => ({ n })), 'exactly the missed messages, in order')
  t.same(es.messages.map((m) => m.lastEventId), [1, 2, 3, 4, 5, 6].map((n) => `${n}/${epoch}/es`))
  await app.rt.publish('es', { n: 7 })
  await es.waitFor(7)
  t.same(JSON.parse(es.messages[6]!.data), { n: 7 }, 'then live')
  t.equal(es.opens(), 2)
  t.equal(es.errors(), 1)
  t.equal(app.rt.hub.listeners('es'), 1)
})

t.test('the eventsource package on two streams: one cursor id resumes both', async (t) => {
  const { app, base } = await startApp(t)
  const sockets = serverSockets(app)
  const es = client(`${base}/events?stream=left&stream=right`)
  t.teardown(() => es.source.close())
  await new Promise((resolve) => es.source.addEventListener('confirm_subscription', () => {
    if (app.rt.hub.listeners('right') === 1) resolve(undefined)
  }))
  await app.rt.publish('left', 'L1')
  await app.rt.publish('right', 'R1')
  await es.waitFor(2)
  t.match(es.messages[1]!.lastEventId, /^~1\/[^/]+\/left,1\/[^/]+\/right$/)
  const dropped = new Promise((resolve) => es.source.addEventListener('error', resolve, { once: true }))
  for (const socket of sockets) socket.destroy()
  await dropped
  await app.rt.publish('left', 'L2')
  await app.rt.publish('right', 'R2')
  await app.rt.publish('left', 'L3')
  await es.waitFor(5)
  t.same(es.messages.map((m) => m.data).sort(), ['L1', 'L2', 'L3', 'R1', 'R2'], 'both streams resumed, nothing twice')
  t.same(es.messages.filter((m) => m.data.startsWith('L')).map((m) => m.data), ['L1', 'L2', 'L3'])
  t.match(es.messages[4]!.lastEventId, /^~3\/[^/]+\/left,2\/[^/]+\/right$/)
})
