import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { Histogram } from '../src/histogram.js'
import { LoadRun } from '../src/load.js'
import type { LoadJob, LoadResult } from '../src/protocol.js'
import { extractPayload, SseClient } from '../src/sse-client.js'
import { account, ClientTracker, now } from '../src/tracker.js'

/**
 * The load generator against a tiny SSE server whose faults are known: it
 * must report exactly the messages the server dropped or repeated, no more.
 */

interface Fault {
  /** Sequence numbers never written to the first client. */
  drop?: number[]
  /** Sequence numbers written twice to the first client. */
  repeat?: number[]
}

/** Writes `id: n` / `data: {"s":n,"t":…}` frames; on Last-Event-ID it replays what followed it. */
async function tinyServer (t: Test, messages: number, fault: Fault, replayFrom: (lastId: number) => number = (lastId) => lastId + 1) {
  const clients: http.ServerResponse[] = []
  const frame = (seq: number): string => `id: ${seq}\ndata: ${JSON.stringify({ s: seq, t: now() })}\n\n`
  let published = 0
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    response.write(': hello\n\n')
    const lastId = Number(request.headers['last-event-id'] ?? 0)
    if (lastId > 0) for (let seq = replayFrom(lastId); seq <= published; seq++) response.write(frame(seq))
    clients.push(response)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return {
    port: (server.address() as AddressInfo).port,
    clients,
    publish (): void {
      for (let seq = 1; seq <= messages; seq++) {
        published = seq
        clients.forEach((client, index) => {
          if (index === 0 && fault.drop?.includes(seq)) return
          client.write(frame(seq))
          if (index === 0 && fault.repeat?.includes(seq)) client.write(frame(seq))
        })
      }
    }
  }
}

function job (port: number, clients: number): LoadJob {
  return {
    kind: 'sse',
    port,
    streams: new Array<number>(clients).fill(0),
    path: '/sse?stream={stream}',
    streamPrefix: 'bench-',
    holdSeconds: 1,
    connectConcurrency: 2,
    connectTimeoutMs: 5000,
    maxReconnects: 1
  }
}

/** Waits (bounded) until the clients saw `count` deliveries in all, duplicates included. */
async function seen (run: LoadRun, count: number): Promise<void> {
  const until = Date.now() + 5000
  const total = (): number => run.clients.reduce((sum, c) => sum + c.tracker.received + c.tracker.duplicates, 0)
  while (total() < count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
}

async function measure (t: Test, fault: Fault): Promise<LoadResult> {
  const server = await tinyServer(t, 20, fault)
  const run = new LoadRun(job(server.port, 3))
  t.same(await run.open().then(({ connected, failed }) => ({ connected, failed })), { connected: 3, failed: 0 })
  server.publish()
  await seen(run, 60 - (fault.drop?.length ?? 0) + (fault.repeat?.length ?? 0))
  const result = await run.finish([20], now())
  run.stop()
  return result
}

t.test('a clean server: nothing lost, nothing repeated', async (t) => {
  const result = await measure(t, {})
  t.match(result, { clients: 3, delivered: 60, expected: 60, lost: 0, duplicates: 0, clientsWithLoss: 0, clientsWithDuplicates: 0, failedToConnect: 0 })
  t.equal(Histogram.fromSparse(result.latency, result.latencyMax).total, 60, 'one latency per delivered message')
})

t.test('a server that drops one message to one client', async (t) => {
  const result = await measure(t, { drop: [7] })
  t.match(result, { delivered: 59, expected: 60, lost: 1, duplicates: 0, clientsWithLoss: 1, clientsWithDuplicates: 0 })
})

t.test('a server that repeats one message to one client', async (t) => {
  const result = await measure(t, { repeat: [11] })
  t.match(result, { delivered: 60, expected: 60, lost: 0, duplicates: 1, clientsWithLoss: 0, clientsWithDuplicates: 1 })
})

t.test('a message dropped at the end is lost, not pending', async (t) => {
  const result = await measure(t, { drop: [20] })
  t.match(result, { delivered: 59, lost: 1, duplicates: 0, clientsWithLoss: 1 })
})

t.test('resuming with Last-Event-ID after a drop: exact replay is clean, a replay that repeats one is counted', async (t) => {
  for (const [replayFrom, duplicates] of [[(lastId: number) => lastId + 1, 0], [(lastId: number) => lastId, 1]] as const) {
    const server = await tinyServer(t, 10, {}, replayFrom)
    const run = new LoadRun(job(server.port, 1))
    await run.open()
    server.publish()
    await seen(run, 10)
    const dropAt = now()
    run.drop(dropAt)
    await t.resolves(waitFor(() => server.clients.length === 2), 'the client came back')
    // The server goes on publishing 11..15 after the resume.
    const more = (seq: number): string => `id: ${seq}\ndata: ${JSON.stringify({ s: seq, t: now() })}\n\n`
    for (let seq = 11; seq <= 15; seq++) server.clients[1]?.write(more(seq))
    await seen(run, 15 + duplicates)
    const result = await run.finish([15], now())
    run.stop()
    t.match(result, { delivered: 15, lost: 0, duplicates, reconnects: 1, caughtUp: 1 })
    t.ok(result.lastCaughtUpAt >= dropAt)
  }
})

async function waitFor (check: () => boolean): Promise<void> {
  const until = Date.now() + 5000
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

t.test('out-of-order delivery is neither loss nor duplication', async (t) => {
  const tracker = new ClientTracker(0)
  const latency = new Histogram()
  for (const s of [1, 3, 2, 5, 4, 4]) tracker.receive({ s, t: now() }, now(), latency)
  t.match(tracker, { contiguous: 5, received: 5, duplicates: 1, outOfOrder: 2 })
  t.equal(tracker.lost(6), 1)
  t.equal(tracker.complete(5), true)
  const gap = new ClientTracker(0)
  gap.receive({ s: 3, t: now() }, now(), latency)
  t.equal(gap.lost(2), 2, 'messages past the expected count do not hide losses')
  t.equal(gap.lost(3), 2)
  t.match(account([tracker, gap], [6]), { clients: 2, delivered: 6, expected: 12, lost: 6, duplicates: 1, outOfOrder: 3, clientsWithLoss: 2, clientsWithDuplicates: 1 })
  t.match(account([new ClientTracker(4)], [6]), { expected: 0, lost: 0 }, 'a stream nothing was published to expects nothing')
})

t.test('payloads are found bare or inside an Action Cable broadcast', async (t) => {
  t.same(extractPayload('{"s":1,"t":2}'), { s: 1, t: 2 })
  t.same(extractPayload('{"identifier":"x","message":{"s":3,"t":4}}'), { s: 3, t: 4 })
  t.equal(extractPayload('{"type":"ping"}'), undefined)
  t.equal(extractPayload('{"s": broken'), undefined)
  t.equal(extractPayload('"s":1'), undefined)
  t.equal(extractPayload('{"message":"s":1}'), undefined)
  t.equal(extractPayload('{"s":"1","message":null}'), undefined)
  t.equal(extractPayload('["s":1]'), undefined)
  t.equal(extractPayload('null ,"s":'), undefined)
})

t.test('an SSE client waits for its ready marker, and times out on a server that never confirms', async (t) => {
  const server = http.createServer((request, response) => {
    if (request.url === '/refuse') {
      response.writeHead(503).end()
      return
    }
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    // Fields with and without the optional space after the colon.
    if (request.url === '/confirm') response.write('data: {"type":"welcome"}\n\nid:x1\ndata:{"type":"confirm_subscription"}\n\nid: x2\ndata: {"type":"confirm_subscription"}\ndata: more\n\n')
    else response.write(':\n\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const port = (server.address() as AddressInfo).port
  const client = (path: string): SseClient => new SseClient(new ClientTracker(0), new Histogram(), { port, path, readyMarker: 'confirm_subscription', maxReconnects: 0 }, () => undefined)
  const confirmed = client('/confirm')
  await t.resolves(confirmed.open(2000))
  await waitFor(() => confirmed.lastEventId === 'x2')
  t.equal(confirmed.lastEventId, 'x2', 'the last id: field, space or not')
  confirmed.close()
  // s7 spreads its clients over several loopback source addresses.
  let sourceAddress: string | undefined
  server.once('request', (request: http.IncomingMessage) => { sourceAddress = request.socket.remoteAddress })
  const fromSource = new SseClient(new ClientTracker(0), new Histogram(), { port, path: '/confirm', readyMarker: 'confirm_subscription', maxReconnects: 0, localAddress: '127.0.0.2' }, () => undefined)
  await t.resolves(fromSource.open(2000))
  t.equal(sourceAddress, '127.0.0.2', 'the connection comes from the given source address')
  fromSource.close()
  const silent = client('/silent')
  await t.rejects(silent.open(100), /not ready in time/)
  silent.close()
  const refused = client('/refuse')
  await t.rejects(refused.open(100), /not ready in time/)
  t.equal(refused.errors, 1)
  refused.close()
  const closed = new SseClient(new ClientTracker(0), new Histogram(), { port: 1, path: '/', maxReconnects: 0 }, () => undefined)
  await t.rejects(closed.open(200))
  t.ok(closed.errors >= 1, 'a refused connection is an error')
  closed.close()
})

t.test('the latency histogram merges and answers percentiles', async (t) => {
  const h = new Histogram()
  t.ok(Number.isNaN(h.percentile(50)), 'empty')
  for (const ms of [-1, 0.005, 5, 50, 500, 5000, 50_000]) h.record(ms)
  t.equal(h.total, 7)
  t.equal(h.max, 50_000)
  t.equal(h.percentile(1), 0.01)
  t.equal(h.percentile(100), 50_000, 'the overflow bucket reports the maximum')
  t.ok(h.percentile(50) >= 50 && h.percentile(50) <= 50.1, `p50 ${h.percentile(50)}`)
  const copy = Histogram.fromSparse(h.toSparse(), h.max)
  const merged = new Histogram(copy.counts)
  merged.add(h.counts, h.max)
  t.equal(merged.total, 14)
  t.equal(merged.percentile(99), 50_000)
  t.ok(merged.percentile(60) >= 500 && merged.percentile(60) <= 501, `p60 ${merged.percentile(60)}`)
  const small = new Histogram()
  small.record(2)
  t.equal(small.percentile(50), 2, 'never above the largest value')
})
