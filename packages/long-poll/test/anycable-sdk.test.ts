/**
 * Issue 21: AnyCable's own SDK (`@anycable/web` 1.1 on `@anycable/core` 1.1)
 * driving rt over long polling through a network blip: the held poll is cut and
 * `/lp` is unreachable for a while, then the SDK restores its session with
 * `?sid=`. In both protocols the channel must come back, and every message it
 * receives must come in order, once.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { createCable } from '@anycable/web'
import t from 'tap'
import { AnyCableLongPollingTransport } from './anycable-sdk-transport.js'
import { FAST, serve } from './helpers.js'

/** A proxy in front of the app whose network can be cut: in-flight requests die, new ones are refused. */
async function flakyNetwork(t: { teardown(fn: () => unknown): void }, target: string) {
  const upstream = new URL(target)
  const sockets = new Set<Socket>()
  let down = false
  const connects: string[] = []
  let afterConnect: (() => Promise<void>) | undefined
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (down) return req.socket.destroy()
    const isConnect = req.headers['x-anycable-poll-id'] === undefined
    if (isConnect) connects.push(req.url ?? '')
    // Forwarded with fetch, so the app side speaks the protocol under test (HTTP/2 over TLS in that run);
    // the leg that is cut stays HTTP/1.1.
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive'].includes(name))) as Record<string, string>
      const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : Buffer.concat(chunks)
      fetch(`${upstream.origin}${req.url ?? ''}`, { method: req.method ?? 'GET', headers, ...(body === undefined ? {} : { body }) }).then(async (answer) => {
        const text = Buffer.from(await answer.arrayBuffer())
        // The hook runs once the server has answered a connect, before the client sees it: "meanwhile" made exact.
        const hook = isConnect ? afterConnect : undefined
        await (hook?.() ?? Promise.resolve())
        const answerHeaders: Record<string, string> = {}
        answer.headers.forEach((value, name) => { if (name !== 'content-length' && name !== 'content-encoding') answerHeaders[name] = value })
        res.writeHead(answer.status, answerHeaders)
        res.end(text)
      }, () => req.socket.destroy())
    })
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}${upstream.pathname}`,
    connects,
    cut(): void {
      down = true
      for (const socket of sockets) socket.destroy()
    },
    restore(): void {
      down = false
    },
    onConnect(hook: () => Promise<void>): void {
      afterConnect = hook
    }
  }
}

/** Resolves once `check()` holds; fails clearly after `ms` (a bound, not a timing assertion). */
async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

for (const protocol of ['actioncable-v1-ext-json', 'actioncable-v1-json'] as const) {
  t.test(`@anycable/web over long polling, ${protocol}: a cut connection, a restored session, order and re-subscription`, async (t) => {
    const { app, url } = await serve(t, { ...FAST, pollInterval: 5 })
    const network = await flakyNetwork(t, url)
    const transport = new AnyCableLongPollingTransport(network.url, { cooldown: 50, sendBuffer: 20, pingInterval: 1000 })
    const cable = createCable({
      transport,
      protocol,
      logLevel: 'error',
      pingInterval: 1000,
      // Reconnect soon after the transport closes (the SDK's own backoff would wait seconds).
      reconnectStrategy: () => 100
    })
    t.teardown(() => cable.disconnect())
    const channel = cable.streamFrom('room')
    const received: number[] = []
    const states: string[] = []
    channel.on('message', (message) => received.push((message as { n: number }).n))
    channel.on('connect', () => states.push('connect'))
    channel.on('close', () => states.push('close'))
    await channel.ensureSubscribed()
    let n = 0
    const publish = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) await app.rt.publish('room', { n: ++n })
    }

    await publish(5)
    await until(() => received.length === 5, 'the first messages')

    network.cut()
    await until(() => cable.state !== 'connected', 'the SDK to notice the cut')
    await publish(5)
    // Published once the restored session exists, before the SDK has asked for anything.
    network.onConnect(() => publish(2))
    network.restore()
    await until(() => states.filter((state) => state === 'connect').length === 2, 'the channel to be connected again')
    t.match(network.connects.at(-1), /[?&]sid=/, 'the SDK restored its session with ?sid=')
    await publish(3)

    const expected = protocol === 'actioncable-v1-ext-json'
      // The extended SDK asks for history from its last offset: 6…10 come back, before 11 and 12.
      ? Array.from({ length: 15 }, (_, i) => i + 1)
      // Action Cable's protocol has no history: what was published while it was away is not resent; the rest is in order.
      : [1, 2, 3, 4, 5, 11, 12, 13, 14, 15]
    await until(() => received.length >= expected.length, `${expected.length} messages`)
    t.same(received, expected, 'in order, each once')
    t.notOk(states.includes('close'), 'the channel never gave up')
    t.equal(channel.state, 'connected')
  })
}
