import { createHook } from 'node:async_hooks'
import { createServer } from 'node:http'
import t from 'tap'
import { Outgoing, disconnectMessage, pingWheel } from '@rt/core'
import { SseConnection } from '../src/connection.js'
import { RETRY_NO_RECONNECT } from '../src/encoder.js'
import { answer, json, open, startApp, subscribed, tick } from './helpers.js'

/** Live timers created by @rt/sse's sources (async_hooks sees every Timeout, with its creation stack). */
function sseTimers(t: { teardown(fn: () => unknown): void }): () => number {
  const live = new Set<number>()
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout' && /[/\\]sse[/\\]src[/\\]/.test(new Error().stack ?? '')) live.add(id)
    },
    destroy(id) {
      live.delete(id)
    }
  }).enable()
  t.teardown(() => hook.disable())
  return () => live.size
}

async function eventually(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2))
}

const clients = async (app: { rt: { metrics: { registry: { getSingleMetric(name: string): unknown } } } }): Promise<number> =>
  ((await (app.rt.metrics.registry.getSingleMetric('sse_clients_num') as { get(): Promise<{ values: Array<{ value: number }> }> }).get()).values[0]?.value ?? 0)

t.test('shutdown: every stream gets disconnect server_restart and ends; no timers, no listeners left', async (t) => {
  const timers = sseTimers(t)
  const { app, base } = await startApp(t, {}, { pingInterval: 50 })
  const get = await subscribed(`${base}/events?stream=down`)
  const post = await open(`${base}/events`, { method: 'POST', body: JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'down' }) }) })
  const raw = await open(`${base}/events?stream=down&raw=1`)
  await post.take(2)
  t.equal(app.rt.hub.listeners('down'), 3)
  t.equal(await clients(app), 3)
  t.equal(timers(), 1, 'one ping timer for the three streams: the ping wheel of their interval')
  await app.close()
  for (const stream of [get, post]) {
    // Pings (every 50 ms here) may come before the disconnect on a busy machine.
    const last = await stream.nextMatching((event) => !event.data.includes('"type":"ping"'))
    t.equal(last.event, 'disconnect')
    t.same(json(last), { type: 'disconnect', reason: 'server_restart', reconnect: true })
    t.equal(last.retry, undefined, 'no retry: the client should come back')
    await stream.end()
  }
  await raw.end()
  t.equal(raw.events.length, 0, 'raw mode drops the disconnect, as AnyCable')
  t.equal(app.rt.hub.listeners('down'), 0)
  t.equal(await clients(app), 0)
  await eventually(() => timers() === 0)
  t.equal(timers(), 0, 'no timer left behind')
})

t.test('a client that goes away releases its subscriptions', async (t) => {
  const unsubscribed: string[] = []
  const { app, base } = await startApp(t, {
    channels: {
      Room: {
        subscribed: (ctx) => ctx.streamFrom('room_1'),
        unsubscribed: (ctx) => { unsubscribed.push(ctx.sid) }
      }
    }
  })
  const streams = await Promise.all([1, 2, 3].map(() => subscribed(`${base}/events?channel=Room`)))
  const multi = await subscribed(`${base}/events?stream=m1&stream=m2`, 2)
  t.equal(app.rt.hub.listeners('room_1'), 3)
  t.equal(app.rt.hub.listeners('m1'), 1)
  t.equal(await clients(app), 4)
  streams[0]!.close()
  streams[1]!.close()
  multi.close()
  await eventually(() => app.rt.hub.listeners('room_1') === 1 && app.rt.hub.listeners('m1') === 0)
  t.equal(app.rt.hub.listeners('room_1'), 1)
  t.equal(app.rt.hub.listeners('m2'), 0)
  await eventually(() => unsubscribed.length === 2)
  t.equal(unsubscribed.length, 2, 'the channel heard both unsubscribes')
  t.equal(await clients(app), 1)
  await app.rt.publish('room_1', 'still here')
  t.equal((await streams[2]!.next()).data, 'still here')
  streams[2]!.close()
  await eventually(() => app.rt.hub.streamCount === 0)
  t.equal(app.rt.hub.streamCount, 0, 'no broker subscription left')
})

t.test('a client gone while broadcasts are written to it releases its subscription', async (t) => {
  const { app, base } = await startApp(t)
  const stream = await subscribed(`${base}/events?stream=left`)
  await app.rt.publish('left', { n: 0 })
  await stream.next()
  stream.close()
  await stream.end()
  // Written before the server has heard of the reset (over HTTP/2 Node then never emits the response's 'close').
  for (let n = 1; n <= 3; n++) await app.rt.publish('left', { n })
  await eventually(() => app.rt.hub.listeners('left') === 0)
  t.equal(await clients(app), 0, 'the connection is gone')
})

t.test('a client gone before its stream opened, and a request caught by shutdown', async (t) => {
  let release: (() => void) | undefined
  const closed: string[] = []
  const { app, base } = await startApp(t, {
    authenticate: async () => {
      await new Promise<void>((resolve) => { release = resolve })
      return {}
    },
    channels: { Probe: { subscribed: (ctx) => ctx.streamFrom('probe'), unsubscribed: (ctx) => { closed.push(ctx.sid) } } }
  })

  // The client aborts while authentication is still running.
  const abort = new AbortController()
  const failed = open(`${base}/events?channel=Probe`, { signal: abort.signal }).then(() => undefined, (error: unknown) => error)
  await eventually(() => release !== undefined)
  abort.abort()
  t.match(await failed, { name: 'AbortError' }, 'the client reset its request')
  await new Promise((resolve) => setTimeout(resolve, 10))
  release!()
  await eventually(() => closed.length === 1)
  t.equal(app.rt.hub.listeners('probe'), 0, 'its subscription was released')
  t.equal(await clients(app), 0, 'no stream was opened for it')

  // The server starts closing while a request authenticates: 503, not a stream that ends at once.
  release = undefined
  const pending = answer(`${base}/events?channel=Probe`)
  await eventually(() => release !== undefined)
  const closing = app.close()
  await tick()
  release!()
  const refused = await pending
  t.equal(refused.status, 503)
  await closing
  t.equal(closed.length, 2)
})

t.test('the write side: disconnect from the hub ends the stream, with retry when not reconnecting', async (t) => {
  const ends: string[] = []
  const server = createServer((req, res) => {
    const raw = req.url === '/raw'
    const connection = new SseConnection(res, { format: req.url === '/post' ? 'post' : 'get', raw, pingInterval: 60_000, maxBufferedBytes: 1 << 20 }, { streams: () => [], start: () => undefined, ended: () => ends.push(req.url!) })
    connection.open({}, 2)
    connection.startPings()
    connection.send(new Outgoing({ identifier: 'i', message: 'm' }))
    connection.send(new Outgoing(disconnectMessage('remote', false)))
    connection.send(new Outgoing({ identifier: 'i', message: 'after' }))
    t.equal(connection.isEnded, true)
    connection.startPings()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const { port } = server.address() as { port: number }
  const get = await open(`http://127.0.0.1:${port}/get`)
  await get.end()
  t.same(get.events.map((e) => [e.event, e.data, e.retry]), [
    ['message', 'm', undefined],
    ['disconnect', '{"type":"disconnect","reason":"remote","reconnect":false}', RETRY_NO_RECONNECT]
  ])
  const post = await open(`http://127.0.0.1:${port}/post`)
  await post.end()
  t.same(post.events.map((e) => e.event), ['message', 'disconnect'])
  t.equal(post.events[1]!.retry, RETRY_NO_RECONNECT)
  const raw = await open(`http://127.0.0.1:${port}/raw`)
  await raw.end()
  t.same(raw.events.map((e) => e.data), ['m'], 'raw: data only, and the stream still ends')
  t.same(ends.sort(), ['/get', '/post', '/raw'])
})

t.test('the write side: the cursor never goes back, and follows a new epoch', async (t) => {
  const server = createServer((_req, res) => {
    const connection = new SseConnection(res, {
      format: 'get',
      raw: false,
      pingInterval: 60_000,
      maxBufferedBytes: 1 << 20
    }, { streams: () => ['a', 'b', 'c'], start: (stream) => (stream === 'b' ? { offset: 7, epoch: 'B' } : undefined), ended: () => undefined })
    connection.open({}, 1)
    const send = (offset: number, epoch: string): void => connection.send(new Outgoing({ identifier: 'i', message: offset, stream_id: 'a', epoch, offset }))
    send(5, 'A')
    send(3, 'A')
    send(2, 'A2')
    connection.end()
    connection.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const { port } = server.address() as { port: number }
  const stream = await open(`http://127.0.0.1:${port}/`)
  await stream.end()
  t.same(stream.events.map((e) => [e.data, e.id]), [
    ['5', '~5/A/a,7/B/b'],
    ['3', '~5/A/a,7/B/b'],
    ['2', '~2/A2/a,7/B/b'],
    ['{"type":"disconnect","reason":"server_restart","reconnect":true}', undefined]
  ], 'an older message (history after live) keeps the cursor; a stream without a position is left out')
})

t.test('pings: each connection rides its interval\'s ping wheel until it ends; event ping, or a comment in raw mode', async (t) => {
  const chunks: string[] = []
  const fake = { on: () => undefined, write: (chunk: Buffer) => chunks.push(chunk.toString()), end: () => undefined, writableLength: 0 }
  const wheel = pingWheel(1234)
  const before = wheel.targets
  const owner = { streams: () => [], start: () => undefined, ended: () => undefined }
  const connections = [false, true].map((raw) => new SseConnection(fake as never, { format: 'get', raw, pingInterval: 1234, maxBufferedBytes: 1 << 20 }, owner))
  for (const connection of connections) {
    connection.startPings()
    connection.startPings()
  }
  t.equal(wheel.targets, before + 2, 'on the wheel once each, however often started')
  for (const connection of connections) connection.ping()
  t.match(chunks[0], /^event: ping\ndata: \{"type":"ping","message":\d+\}\n\n$/)
  t.equal(chunks[1], ':\n\n', 'raw mode: a comment')
  for (const connection of connections) connection.end()
  t.equal(wheel.targets, before, 'an ended connection leaves the wheel')
  const ended = new SseConnection(fake as never, { format: 'get', raw: false, pingInterval: 1234, maxBufferedBytes: 1 << 20 }, owner)
  ended.end()
  ended.startPings()
  t.equal(pingWheel(1234).targets, 0, 'an ended connection never joins')
})
