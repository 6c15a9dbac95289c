import type { CannonSpec } from './cannon.js'
import type { DeliverySpec } from './measure.js'
import { BROADCAST_KEY } from './servers/rt.js'

/** One table: the same job done by rt, its peers and the ceiling. */
export interface Group {
  id: string
  title: string
  kind: 'delivery' | 'requests' | 'storm' | 'idle'
  /** The rt row's target, the ceiling's, and the peers'. */
  rt: string
  ceiling: string
  /** Reference rows that are not peers (held to the ceiling's 0.8× bar, not to 1×). */
  floors?: string[]
  deliveries?: DeliverySpec[]
  cannons?: CannonSpec[]
  inproc?: Array<{ target: string; label: string; count: number; maxMs: number }>
  note?: string
}

export interface Scenario {
  id: string
  title: string
  groups: Group[]
  note?: string
  /** Run only when `--only` names it (too long for every full run). */
  onRequest?: boolean
}

/** rt's SSE client path and the text that says its subscription is confirmed. */
export const RT_SSE = { path: '/events?stream={stream}', readyMarker: 'confirm_subscription' }
export const RT_LONG_POLL_PATH = '/lp'
export const RT_CATEGORY_PATH = '/events'

const sseTargets = (clients: number, streams: number, rate: number, durationMs: number, drainMs: number, settleMs: number, dropAtMs?: number): DeliverySpec[] => {
  const common = { kind: 'sse' as const, clients, streams, rate, durationMs, drainMs, settleMs, holdSeconds: 10, historyLimit: 10_000, ...(dropAtMs === undefined ? {} : { dropAtMs }) }
  return [
    { ...common, target: 'rt-sse', label: 'rt (@rt/sse)', ...RT_SSE },
    { ...common, target: 'better-sse', label: 'better-sse 0.16 on Fastify', path: '/sse?stream={stream}' },
    { ...common, target: 'fastify-sse', label: '@fastify/sse 0.6', path: '/sse?stream={stream}' },
    { ...common, target: 'ceiling-sse', label: 'ceiling (node:http, one Buffer)', path: '/sse?stream={stream}' }
  ]
}

/** The scenarios of issue 10, with counts scaled for a 2-core machine (`quick`: a smoke run under a minute). */
export function scenarios (quick: boolean): Scenario[] {
  const q = <T>(full: T, small: T): T => (quick ? small : full)
  const fanOut: Array<{ clients: number; rate: number; ms: number }> = q(
    [{ clients: 1000, rate: 100, ms: 5000 }, { clients: 1000, rate: 1000, ms: 3000 }, { clients: 10_000, rate: 100, ms: 3000 }],
    [{ clients: 200, rate: 1000, ms: 500 }]
  )
  const manyClients = q(10_000, 1000)
  const lpClients = q(1000, 200)
  const catClients = q(1000, 200)
  const categories = q(100, 20)
  const stormClients = q(5000, 300)
  // Steady state well within every target's capacity (50k deliveries/s), so the storm itself is what is measured.
  const stormRate = q(10, 50)
  // Idle connections: more than one process may hold here (the hard descriptor limit is 20 000 per process on
  // the bench VM), so they are spread over server processes of the same target, ~14k each.
  const idleClients = q(100_000, 2000)
  const idleServers = q(7, 2)
  const cannonSeconds = q(5, 1)
  const drainMs = q(15_000, 4000)
  const settleMs = q(500, 150)
  const hold = 10
  return [
    {
      id: 's1',
      title: '1. SSE fan-out: one stream, N connections, fixed broadcast rate',
      note: q('10k connections at 1k msg/s (10M deliveries/s offered) is not run: the 1k@1k and 10k@100 cells already saturate this 2-core machine, where the load generators share the cores with the server.', undefined),
      groups: fanOut.map(({ clients, rate, ms }) => ({
        id: `s1-${clients}-${rate}`,
        title: `${clients} connections, ${rate} msg/s for ${ms / 1000} s (${(clients * rate).toLocaleString('en-US')} deliveries/s offered)`,
        kind: 'delivery' as const,
        rt: 'rt-sse',
        ceiling: 'ceiling-sse',
        deliveries: sseTargets(clients, 1, rate, ms, drainMs, settleMs)
      }))
    },
    {
      id: 's2',
      title: '2. SSE many streams: every connection on its own stream, publishes spread round-robin',
      groups: [{
        id: 's2',
        title: `${manyClients} connections on ${manyClients} streams, ${q(5000, 2000)} msg/s for ${q(4, 0.5)} s`,
        kind: 'delivery',
        rt: 'rt-sse',
        ceiling: 'ceiling-sse',
        note: 'rt pings every connection every 3 s (AnyCable\'s default, `ping_interval`): with 10k connections that is 3.3k ping writes a second next to the 5k messages, where better-sse pings every 10 s, @fastify/sse every 30 s and the ceiling never. The second rt row asks for 30 s pings (`?pi=30`, AnyCable\'s per-connection option) to show what that duty costs.',
        deliveries: ((targets) => [targets[0]!, { ...targets[0]!, label: 'rt (@rt/sse), pings every 30 s (?pi=30)', path: `${RT_SSE.path}&pi=30` }, ...targets.slice(1)])(
          sseTargets(manyClients, manyClients, q(5000, 2000), q(4000, 500), drainMs, settleMs))
      }]
    },
    {
      id: 's3',
      title: '3. AnyCable long polling: sessions on one stream with broadcasts; plain request throughput',
      groups: [
        {
          id: 's3-deliver',
          title: `${lpClients} polling sessions on one stream, 100 msg/s for ${q(5, 1)} s (poll hold ${hold} s)`,
          kind: 'delivery',
          rt: 'rt-lp',
          ceiling: 'ceiling-lp',
          deliveries: [
            { target: 'rt-lp', label: 'rt (@rt/long-poll, defaults: 500 ms flush)', kind: 'rt-lp', path: RT_LONG_POLL_PATH },
            { target: 'rt-lp-noflush', label: 'rt (@rt/long-poll, flushInterval 0)', kind: 'rt-lp', path: RT_LONG_POLL_PATH },
            { target: 'socketio', label: "socket.io 4 (transports: ['polling'])", kind: 'socketio' },
            { target: 'ceiling-lp', label: 'ceiling (node:http, answers from an array)', kind: 'ceiling-lp' }
          ].map((t) => ({ ...t, clients: lpClients, streams: 1, rate: 100, durationMs: q(5000, 1000), drainMs, settleMs, holdSeconds: hold, historyLimit: 10_000 })) as DeliverySpec[]
        },
        {
          id: 's3-requests',
          title: `Requests answered at once, autocannon -c 100 -p 1 -d ${cannonSeconds}`,
          kind: 'requests',
          rt: 'rt-lp',
          ceiling: 'ceiling-lp',
          note: 'rt: a connecting POST /lp (subscribe command; answered with welcome and confirmation); socket.io: an Engine.IO polling handshake; ceiling: a poll whose cursor is behind (answered from the array). Each is the cheapest poll the transport answers without waiting.',
          cannons: [
            { target: 'rt-lp', label: 'rt (@rt/long-poll)', method: 'POST', path: RT_LONG_POLL_PATH, headers: { 'content-type': 'text/plain' }, body: `${JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'bench-0' }) })}\n` },
            { target: 'socketio', label: 'socket.io 4 (polling handshake)', method: 'GET', path: '/socket.io/?EIO=4&transport=polling' },
            { target: 'ceiling-lp', label: 'ceiling (node:http)', method: 'GET', path: '/lp?stream=bench-0&after=0', seed: 1 }
          ].map((c) => ({ ...c, connections: 100, seconds: cannonSeconds })) as CannonSpec[]
        }
      ]
    },
    {
      id: 's4',
      title: '4. Category polling (golongpoll protocol)',
      groups: [{
        id: 's4',
        title: `${catClients} clients on ${categories} categories, ${categories * 20} msg/s (20/s per category) for ${q(5, 1)} s`,
        kind: 'delivery',
        rt: 'rt-category',
        ceiling: 'ceiling-category',
        note: 'rt and the ceiling are read with golongpoll\'s client loop (since_time + last_id from the newest event); the second rt row drives rt with `poll()` from `@rt/category-poll/client` (fetch) instead. express-longpoll has no cursor: what is published while a client is between two polls never reaches it.',
        deliveries: [
          { target: 'rt-category', label: 'rt (@rt/category-poll), golongpoll loop', kind: 'category', path: RT_CATEGORY_PATH },
          { target: 'rt-category', label: 'rt (@rt/category-poll), its own client helper poll()', kind: 'category-helper', path: RT_CATEGORY_PATH },
          { target: 'express-longpoll', label: 'express-longpoll 1.0 on Express 5', kind: 'express-longpoll' },
          { target: 'ceiling-category', label: 'ceiling (node:http, answers from an array)', kind: 'category', path: '/events' },
          { target: 'ceiling-category-headers', label: "ceiling with golongpoll's five headers", kind: 'category', path: '/events' }
        ].map((t) => ({ ...t, clients: catClients, streams: categories, rate: categories * 20, durationMs: q(5000, 1000), drainMs, settleMs, holdSeconds: hold, historyLimit: 10_000 })) as DeliverySpec[]
      }, {
        id: 's4-golongpoll',
        title: `golongpoll itself: ${q(500, 100)} clients on ${q(50, 10)} categories, ${q(270, 54)} msg/s published over HTTP for ${q(10, 1)} s`,
        kind: 'delivery',
        rt: 'rt-category-external',
        ceiling: 'ceiling-category-external',
        note: `Runs only with ${'`'}BENCH_GOLONGPOLL_CMD${'`'} set to a command that starts golongpoll (built by you from its public source, serving its SubscriptionHandler at /events and PublishHandler at /publish on 127.0.0.1:$PORT; bench/README.md says how). Every server runs as its own process, gets the same golongpoll publish requests (POST /publish, one at a time) from the bench, and are read with golongpoll's client loop; CPU and RSS are the server process's, from /proc.`,
        deliveries: [
          { target: 'rt-category-external', label: 'rt (@rt/category-poll, its own process)', kind: 'category', path: RT_CATEGORY_PATH },
          { target: 'golongpoll', label: 'golongpoll (Go, BENCH_GOLONGPOLL_CMD)', kind: 'category', path: '/events' },
          { target: 'ceiling-category-external', label: 'ceiling (node:http, answers from an array, its own process)', kind: 'category', path: '/events' }
        ].map((t) => ({ ...t, clients: q(500, 100), streams: q(50, 10), rate: q(270, 54), durationMs: q(10_000, 1000), drainMs, settleMs, holdSeconds: hold, historyLimit: 10_000 })) as DeliverySpec[]
      }]
    },
    {
      id: 's5',
      title: '5. Publish throughput (no subscribers)',
      groups: [
        {
          id: 's5-http',
          title: `POST /_broadcast over HTTP, autocannon -c 50 -p 1 -d ${cannonSeconds}`,
          kind: 'requests',
          rt: 'rt-publish-memory',
          ceiling: 'ceiling-publish',
          floors: ['fastify-publish'],
          cannons: [
            { target: 'rt-publish-memory', label: 'rt, memory broker' },
            { target: 'rt-publish-redis', label: 'rt, Redis broker (@rt/redis)' },
            { target: 'fastify-publish', label: 'floor: Fastify 5 route, JSON body + array push' },
            { target: 'ceiling-publish', label: 'ceiling (node:http, JSON.parse + array push)' }
          ].map((c) => ({
            ...c,
            method: 'POST' as const,
            path: '/_broadcast',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${BROADCAST_KEY}` },
            body: JSON.stringify({ stream: 'bench-pub', data: JSON.stringify({ s: 1, text: 'x'.repeat(64) }) }),
            connections: 50,
            seconds: cannonSeconds
          }))
        },
        {
          id: 's5-inproc',
          title: 'In-process `await rt.publish(stream, data)`, one after another',
          kind: 'requests',
          rt: 'rt-publish-memory',
          ceiling: 'ceiling-publish',
          inproc: [
            // Bounded by time (the counts are only a cap), so every row measures the same window.
            { target: 'rt-publish-memory', label: 'rt, memory broker', count: 100_000_000, maxMs: q(3000, 500) },
            { target: 'rt-publish-redis', label: 'rt, Redis broker (@rt/redis)', count: 10_000_000, maxMs: q(3000, 500) },
            { target: 'ceiling-publish', label: 'ceiling (array push)', count: 1_000_000_000, maxMs: q(3000, 500) }
          ]
        }
      ]
    },
    {
      id: 's6',
      title: '6. Reconnect storm: every SSE client drops and resumes with Last-Event-ID at once while publishing continues',
      groups: [{
        id: 's6',
        title: `${stormClients} clients on one stream, ${stormRate} msg/s for ${q(6, 1.5)} s, all drop at ${q(2, 0.4)} s`,
        kind: 'storm',
        rt: 'rt-sse',
        ceiling: 'ceiling-sse',
        note: 'better-sse and @fastify/sse keep no history: their routes replay from an array after Last-Event-ID (what a user would add). Catch-up time: from the drop until every client has everything up to a message published after the drop.',
        deliveries: sseTargets(stormClients, 1, stormRate, q(6000, 1500), drainMs, settleMs, q(2000, 400))
      }]
    },
    {
      id: 's7',
      title: '7. Idle SSE connections: many connections held on one stream, then one broadcast to all of them',
      // Opening 2 × 100k connections took 16 min with the machine shared (5-15 min more than every other row together).
      onRequest: true,
      groups: [{
        id: 's7',
        title: `${idleClients.toLocaleString('en-US')} idle connections on one stream over ${idleServers} server processes, then one broadcast`,
        kind: 'idle',
        rt: 'rt-sse',
        ceiling: 'ceiling-sse',
        note: `One process may hold at most \`ulimit -Hn\` descriptors (20 000 on the bench VM, and it cannot be raised there), so each target runs as ${idleServers} processes of its own with ${Math.round(idleClients / idleServers).toLocaleString('en-US')} connections each, fed by ${idleServers} load processes, each connecting from its own source address in 127.0.0.0/8 (its own ephemeral port range). KB/conn: the RSS growth of all server processes over the empty ones, each read after a full GC, ÷ connections. The broadcast is one publish in each process (one message to every connection); latency from publish to receipt.`,
        deliveries: [
          { target: 'rt-sse', label: 'rt (@rt/sse)', ...RT_SSE },
          { target: 'ceiling-sse', label: 'ceiling (node:http, one Buffer)', path: '/sse?stream={stream}' }
        ].map((t) => ({
          ...t,
          kind: 'sse' as const,
          clients: idleClients,
          streams: 1,
          rate: 1,
          durationMs: 1000,
          drainMs,
          settleMs: q(2000, 300),
          holdSeconds: hold,
          historyLimit: 10_000,
          servers: idleServers,
          loadProcesses: idleServers,
          localAddresses: true,
          // Opening 100k connections on a busy 2-core machine leaves some waiting in the accept queue for long.
          connectTimeoutMs: 120_000
        }))
      }]
    }
  ]
}
