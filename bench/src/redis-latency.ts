/**
 * Redis with two nodes against the memory broker, in two parts. Loopback Redis
 * at REDIS_URL (default 127.0.0.1:6379); bounded in count; writes
 * results/redis-latency.md and .json. Not part of CI.
 *
 * Latency (the goal's "delivery p99 across 2 nodes"): node A publishes at a
 * steady 1000 messages/s, open loop (a publish never waits for the previous
 * one, so a slow message does not hide the ones behind it), and node B
 * receives, in another process (`fork`, as in a deployment) and, for
 * comparison, in A's process. Every other tick is rt's publish, the others a
 * bare ioredis PUBLISH of the same payload received by a bare subscriber in
 * B: the floor of any pub/sub delivery on this machine, measured under the
 * very same load, message by message. Times are CLOCK_MONOTONIC
 * (`process.hrtime`), which processes on one machine share. B also reports its
 * event-loop delay and GC pauses over the run.
 *
 * Throughput: COUNT publishes one after another and COUNT all at once, both
 * nodes in this process, `--runs` times (default 3), alternating publishes
 * batched per stream (the default, `publishBatch` 100) and one script call per
 * publish (`publishBatch: 1`, rt before batching), so their ratio is taken
 * under the same load.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { hostname, cpus, loadavg } from 'node:os'
import { randomBytes } from 'node:crypto'
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import type { Broker } from '@rt/core'
import { MemoryBroker } from '@rt/core'
import { RedisBroker } from '@rt/redis'
import { Redis } from 'ioredis'

const quick = process.argv.includes('--quick')
/** Only the latency part, printed, nothing written (for quick comparisons). */
const latencyOnly = process.argv.includes('--latency-only')
const COUNT = quick ? 500 : 5000
/** Messages of each kind (rt, floor) per latency run, after WARM_UP more that are not timed (JIT, connections). */
const TICKS = quick ? 1000 : 5000
const WARM_UP = 500
/** One message every TICK_MS (alternating rt and floor): 1000/s in all. */
const TICK_MS = 1
const runsAt = process.argv.indexOf('--runs')
const RUNS = runsAt > 0 ? Math.max(1, Number.parseInt(process.argv[runsAt + 1] ?? '3', 10) || 3) : 3
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Milliseconds on CLOCK_MONOTONIC, shared by the processes of one machine. */
function clock(): number {
  return Number(process.hrtime.bigint()) / 1e6
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * What the machine's scheduler did meanwhile, from /proc (Linux, Redis on this
 * machine): microseconds during which some runnable task waited for a CPU
 * (PSI), and how often Redis was preempted. NaN where not readable.
 */
function scheduler(redisPid: number): { waitingUs: number; redisPreempted: number } {
  const read = (path: string, pattern: RegExp): number => {
    try {
      return Number(pattern.exec(readFileSync(path, 'utf8'))?.[1] ?? NaN)
    } catch {
      return NaN
    }
  }
  return {
    waitingUs: read('/proc/pressure/cpu', /^some .*total=(\d+)/m),
    redisPreempted: read(`/proc/${redisPid}/status`, /^nonvoluntary_ctxt_switches:\s+(\d+)/m)
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

interface Spread {
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b)
  return { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999), max: sorted.at(-1) ?? NaN }
}

/** What the latency messages carry: number within their kind, publish time on {@link clock}. */
interface Tick {
  i: number
  at: number
}

interface Setup {
  url: string
  keyPrefix: string
  stream: string
  channel: string
  /** Messages of each kind, warm-up included. */
  count: number
}

/** What node B saw over a latency run. */
interface Received {
  /** Publish → delivery, ms, of the timed messages. */
  rt: number[]
  floor: number[]
  lost: { rt: number; floor: number }
  duplicates: number
  /** Timed messages over 1 ms: rt's, of those how many whose floor message of the same pair (1 ms earlier) was too, and the floor's. */
  slow: { rt: number; rtWithFloor: number; floor: number }
  eventLoopDelay: { p99: number; max: number }
  gc: { count: number; ms: number; maxMs: number }
}

/** Above this a delivery counts as slow (the goal's bound). */
const SLOW_MS = 1

/** Node B: an rt broker subscribed to the stream and a bare subscriber on the floor channel. */
class Receiver {
  private readonly broker: RedisBroker
  private readonly subscriber: Redis
  private readonly seen = { rt: new Set<number>(), floor: new Set<number>() }
  /** Latency by message number, NaN until received. */
  private readonly times: { rt: Float64Array; floor: Float64Array }
  private duplicates = 0
  private readonly stop: () => void
  private readonly delay = monitorEventLoopDelay({ resolution: 1 })
  private readonly gc = { count: 0, ms: 0, maxMs: 0 }
  private readonly observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      this.gc.count++
      this.gc.ms += entry.duration
      this.gc.maxMs = Math.max(this.gc.maxMs, entry.duration)
    }
  })

  constructor(private readonly setup: Setup) {
    this.times = { rt: new Float64Array(setup.count).fill(NaN), floor: new Float64Array(setup.count).fill(NaN) }
    this.broker = new RedisBroker({ url: setup.url, keyPrefix: setup.keyPrefix })
    this.stop = this.broker.subscribe(setup.stream, (message) => this.record('rt', message.data as Tick))
    this.subscriber = new Redis(setup.url)
    this.subscriber.on('message', (_channel: string, payload: string) => this.record('floor', JSON.parse(payload) as Tick))
  }

  async ready(): Promise<void> {
    await this.subscriber.subscribe(this.setup.channel)
    // Lets rt's SUBSCRIBE and first catch-up reach Redis before the first publish.
    await sleep(200)
    this.delay.enable()
    this.observer.observe({ entryTypes: ['gc'] })
  }

  private record(kind: 'rt' | 'floor', { i, at }: Tick): void {
    const latency = clock() - at
    if (this.seen[kind].has(i)) this.duplicates++
    this.seen[kind].add(i)
    this.times[kind][i] = latency
  }

  async finish(): Promise<Received> {
    const expected = this.setup.count
    for (let wait = 0; wait < 100 && (this.seen.rt.size < expected || this.seen.floor.size < expected); wait++) await sleep(5)
    this.delay.disable()
    this.observer.disconnect()
    this.stop()
    await this.broker.close()
    this.subscriber.disconnect()
    const timed = (kind: 'rt' | 'floor'): number[] => [...this.times[kind].subarray(WARM_UP)].filter((ms) => !Number.isNaN(ms))
    const { rt, floor } = this.times
    let rtWithFloor = 0
    for (let i = WARM_UP; i < expected; i++) if (rt[i]! > SLOW_MS && floor[i]! > SLOW_MS) rtWithFloor++
    return {
      rt: timed('rt'),
      floor: timed('floor'),
      slow: { rt: timed('rt').filter((ms) => ms > SLOW_MS).length, rtWithFloor, floor: timed('floor').filter((ms) => ms > SLOW_MS).length },
      lost: { rt: expected - this.seen.rt.size, floor: expected - this.seen.floor.size },
      duplicates: this.duplicates,
      eventLoopDelay: { p99: this.delay.percentile(99) / 1e6, max: this.delay.max / 1e6 },
      gc: this.gc
    }
  }
}

/** Node B in another process, driven over IPC: `setup` → `ready`, `finish` → what it received. */
function remoteReceiver(setup: Setup): { ready: () => Promise<void>; finish: () => Promise<Received> } {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--receiver'], { stdio: 'inherit' })
  const next = (): Promise<unknown> => new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => reject(new Error(`receiver exited (${code})`)))
  })
  return {
    ready: async () => {
      child.send({ setup })
      await next()
    },
    finish: async () => {
      const received = next()
      child.send({ finish: true })
      return (await received) as Received
    }
  }
}

if (process.argv.includes('--receiver')) {
  let receiver: Receiver | undefined
  process.on('message', (message: { setup?: Setup; finish?: true }) => {
    if (message.setup !== undefined) {
      receiver = new Receiver(message.setup)
      void receiver.ready().then(() => process.send!('ready'))
    } else {
      void receiver!.finish().then((received) => process.send!(received, () => process.disconnect()))
    }
  })
}

interface LatencyRow {
  nodes: string
  run: number
  rt: Spread
  floor: Spread
  /** On node A: publish call → the script's reply (rt), PUBLISH → its reply (floor). */
  replyRt: Spread
  replyFloor: Spread
  lost: { rt: number; floor: number }
  duplicates: number
  slow: { rt: number; rtWithFloor: number; floor: number }
  eventLoopDelay: { p99: number; max: number }
  gc: { count: number; ms: number; maxMs: number }
  /** Share of the run during which some runnable task waited for a CPU (PSI "some"), %. */
  cpuPressure: number
  /** Times Redis was preempted during the run. */
  redisPreempted: number
}

const TWO = 'two processes'
const ONE = 'one process'

/** One latency run: node A (this process) publishes TICKS + WARM_UP messages of each kind at a steady rate. */
async function latency(nodes: string, run: number, keyPrefix: string, redisPid: number): Promise<LatencyRow> {
  const id = randomBytes(4).toString('hex')
  const setup: Setup = { url, keyPrefix, stream: `bench-latency-${id}`, channel: `${keyPrefix}floor-${id}`, count: WARM_UP + TICKS }
  const receiver = nodes === TWO ? remoteReceiver(setup) : new Receiver(setup)
  const broker = new RedisBroker({ url, keyPrefix })
  const publisher = new Redis(url)
  await receiver.ready()
  const replyRt: number[] = []
  const replyFloor: number[] = []
  // Counted, not kept: holding every publish's promise would grow this process's heap (and its GC pauses) with the run.
  let outstanding = 0
  let drained = (): void => undefined
  const settled = (): void => {
    if (--outstanding === 0) drained()
  }
  const total = 2 * (WARM_UP + TICKS)
  const before = scheduler(redisPid)
  const start = clock()
  for (let n = 0; n < total; n++) {
    // On schedule: tick n at start + n × TICK_MS; a late tick is sent at once (open loop, no coordinated omission).
    const wait = start + n * TICK_MS - clock()
    if (wait > 0) await sleep(wait)
    const i = n >> 1
    const at = clock()
    const timed = i >= WARM_UP
    outstanding++
    const sent = n % 2 === 0 ? publisher.publish(setup.channel, JSON.stringify({ i, at })) : broker.publish(setup.stream, { i, at })
    const replies = n % 2 === 0 ? replyFloor : replyRt
    void sent.then(() => {
      if (timed) replies.push(clock() - at)
      settled()
    })
  }
  if (outstanding > 0) await new Promise<void>((resolve) => (drained = resolve))
  const after = scheduler(redisPid)
  const elapsedUs = (clock() - start) * 1000
  const received = await receiver.finish()
  await broker.close()
  publisher.disconnect()
  return {
    nodes,
    run,
    rt: spread(received.rt),
    floor: spread(received.floor),
    replyRt: spread(replyRt),
    replyFloor: spread(replyFloor),
    lost: received.lost,
    duplicates: received.duplicates,
    slow: received.slow,
    eventLoopDelay: received.eventLoopDelay,
    gc: received.gc,
    cpuPressure: (100 * (after.waitingUs - before.waitingUs)) / elapsedUs,
    redisPreempted: after.redisPreempted - before.redisPreempted
  }
}

interface Row {
  broker: string
  run: number
  sequentialPerSecond: number
  pipelinedPerSecond: number
  /** CPU of this process (both nodes) per concurrent publish, µs: publishing on A and receiving on B. */
  cpuUsPerPublish: number
  lost: number
  duplicates: number
}

/** Publishes COUNT messages on `publisher`, one after another, and COUNT more all at once; `subscriber` receives them. */
async function measure(name: string, run: number, publisher: Broker, subscriber: Broker): Promise<Row> {
  const stream = `bench-throughput-${randomBytes(4).toString('hex')}`
  const seen = new Set<number>()
  let duplicates = 0
  const stop = subscriber.subscribe(stream, (message) => {
    const { i } = message.data as { i: number }
    if (seen.has(i)) duplicates++
    seen.add(i)
  })
  // Let the subscription reach Redis before the first publish.
  await sleep(200)
  const started = process.hrtime.bigint()
  for (let i = 0; i < COUNT; i++) await publisher.publish(stream, { i })
  const sequential = COUNT / (Number(process.hrtime.bigint() - started) / 1e9)
  const cpuStart = process.cpuUsage()
  const pipelinedStart = process.hrtime.bigint()
  await Promise.all(Array.from({ length: COUNT }, (_, k) => publisher.publish(stream, { i: COUNT + k })))
  const pipelined = COUNT / (Number(process.hrtime.bigint() - pipelinedStart) / 1e9)
  for (let wait = 0; wait < 100 && seen.size < 2 * COUNT; wait++) await sleep(5)
  const cpu = process.cpuUsage(cpuStart)
  stop()
  return {
    broker: name,
    run,
    sequentialPerSecond: Math.round(sequential),
    pipelinedPerSecond: Math.round(pipelined),
    cpuUsPerPublish: (cpu.user + cpu.system) / COUNT,
    lost: 2 * COUNT - seen.size,
    duplicates
  }
}

const BATCHED = '@rt/redis (publishBatch 100, the default), publish on node A, receive on node B'
const SINGLE = '@rt/redis, one script call per publish (publishBatch 1)'

async function main(): Promise<void> {
  const memory = new MemoryBroker({ historyLimit: 100 })
  const keyPrefix = `rt-bench-${randomBytes(4).toString('hex')}:`
  const open: Broker[] = [memory]
  /** Two nodes on the same Redis, each with its own connections. */
  const nodes = (publishBatch?: number): [RedisBroker, RedisBroker] => {
    const options = { url, keyPrefix, ...(publishBatch === undefined ? {} : { publishBatch }) }
    const pair: [RedisBroker, RedisBroker] = [new RedisBroker(options), new RedisBroker(options)]
    open.push(...pair)
    return pair
  }
  const loadAtStart = loadavg()
  const info = new Redis(url)
  const redisPid = Number(/process_id:(\d+)/.exec(await info.info('server'))?.[1] ?? NaN)
  info.disconnect()
  try {
    const latencies: LatencyRow[] = []
    for (let run = 1; run <= RUNS; run++) {
      for (const mode of run % 2 === 1 ? [TWO, ONE] : [ONE, TWO]) latencies.push(await latency(mode, run, keyPrefix, redisPid))
    }
    const rows: Row[] = [await measure('memory broker (one process)', 1, memory, memory)]
    for (let run = 1; run <= (latencyOnly ? 0 : RUNS); run++) {
      // Alternating, so that both see the same load on a shared machine.
      for (const [name, batch] of run % 2 === 1 ? [[SINGLE, 1], [BATCHED, undefined]] as const : [[BATCHED, undefined], [SINGLE, 1]] as const) {
        const [a, b] = nodes(batch)
        rows.push(await measure(name, run, a, b))
        await a.close()
        await b.close()
      }
    }
    const mem = rows[0]!
    const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 3 })
    const ms = (n: number): string => n.toFixed(3)
    const ratios = Array.from({ length: latencyOnly ? 0 : RUNS }, (_, k) => {
      const batched = rows.find((r) => r.run === k + 1 && r.broker === BATCHED)!
      const single = rows.find((r) => r.run === k + 1 && r.broker === SINGLE)!
      return { run: k + 1, throughput: batched.pipelinedPerSecond / single.pipelinedPerSecond, cpu: batched.cpuUsPerPublish / single.cpuUsPerPublish }
    })
    const lines = [
      `# Redis with two nodes vs the memory broker${quick ? ' (quick)' : ''}`,
      '',
      `${hostname()}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}, ${new Date().toISOString()}, Redis on loopback, load average at start ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}, at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}.`,
      '',
      '## Publish → delivery across two nodes',
      '',
      `Node A publishes ${1000 / TICK_MS} messages/s, open loop, alternating rt (\`RedisBroker\`, defaults) and the floor (a bare ioredis PUBLISH received by a bare subscriber on node B: one Redis round trip between two processes, nothing of rt). ${TICKS} timed messages of each kind per row after ${WARM_UP} untimed ones. Node B in its own process (as deployed) or in A's. Latencies in ms; "reply" is on node A (publish call → Redis's answer); B's event-loop delay and GC are over the run. CPU pressure is the share of the run during which some runnable task of this machine waited for a CPU (/proc/pressure/cpu, "some"); "Redis preempted" counts Redis's involuntary context switches meanwhile (/proc/<pid>/status): a delivery waits whenever Redis, node A or node B is runnable but not running.`,
      '',
      '| nodes | run | status | rt p50 | rt p90 | rt p99 | rt p99.9 | rt max | floor p50 | floor p90 | floor p99 | floor p99.9 | floor max | rt − floor p50 / p99 | over 1 ms: rt (floor of the same pair too) / floor | A: rt reply p99 | A: floor reply p99 | B: event-loop delay p99 / max | B: GC pauses (count, total, max ms) | CPU pressure % | Redis preempted | lost rt / floor | dup |',
      '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...latencies.map((r) => `| ${r.nodes} | ${r.run} | ${r.lost.rt === 0 && r.lost.floor === 0 && r.duplicates === 0 ? 'ok' : 'FAIL'} | ${ms(r.rt.p50)} | ${ms(r.rt.p90)} | ${ms(r.rt.p99)} | ${ms(r.rt.p999)} | ${ms(r.rt.max)} | ${ms(r.floor.p50)} | ${ms(r.floor.p90)} | ${ms(r.floor.p99)} | ${ms(r.floor.p999)} | ${ms(r.floor.max)} | ${ms(r.rt.p50 - r.floor.p50)} / ${ms(r.rt.p99 - r.floor.p99)} | ${r.slow.rt} (${r.slow.rtWithFloor}) / ${r.slow.floor} | ${ms(r.replyRt.p99)} | ${ms(r.replyFloor.p99)} | ${ms(r.eventLoopDelay.p99)} / ${ms(r.eventLoopDelay.max)} | ${r.gc.count}, ${ms(r.gc.ms)}, ${ms(r.gc.maxMs)} | ${r.cpuPressure.toFixed(0)} | ${r.redisPreempted} | ${r.lost.rt} / ${r.lost.floor} | ${r.duplicates} |`),
      '',
      '## Publish throughput',
      '',
      `${COUNT} sequential + ${COUNT} concurrent publishes per row, both nodes in this process, ${RUNS} runs of each Redis row (alternating). CPU is this process (node A publishing, node B receiving) per concurrent publish.`,
      '',
      '| broker | run | status | sequential publishes/s | concurrent publishes/s | CPU µs per concurrent publish | lost | dup |',
      '|---|---:|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.broker} | ${r.run} | ${r.lost === 0 && r.duplicates === 0 ? 'ok' : 'FAIL'} | ${fmt(r.sequentialPerSecond)} | ${fmt(r.pipelinedPerSecond)} | ${r.cpuUsPerPublish.toFixed(1)} | ${r.lost} | ${r.duplicates} |`),
      '',
      `Batched ÷ one call per publish, concurrent publishes/s: ${ratios.map((r) => `${r.throughput.toFixed(2)}×`).join(', ')} (runs ${ratios.map((r) => r.run).join(', ')}); CPU per publish: ${ratios.map((r) => `${r.cpu.toFixed(2)}×`).join(', ')}.`,
      `Memory broker: ${fmt(mem.sequentialPerSecond)} sequential, ${fmt(mem.pipelinedPerSecond)} concurrent publishes/s.`,
      ''
    ]
    if (latencyOnly) {
      console.log(lines.slice(0, lines.indexOf('## Publish throughput')).join('\n'))
      return
    }
    const out = new URL(`../results/redis-latency${quick ? '-quick' : ''}`, import.meta.url)
    writeFileSync(`${out.pathname}.md`, lines.join('\n'))
    writeFileSync(`${out.pathname}.json`, JSON.stringify({ count: COUNT, ticks: TICKS, warmUp: WARM_UP, runs: RUNS, latencies, rows, ratios }, null, 2) + '\n')
    console.log(lines.join('\n'))
  } finally {
    for (const broker of open) await broker.close()
    // Leave nothing behind in Redis.
    const redis = new Redis(url)
    const keys = await redis.keys(`${keyPrefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  }
}

if (!process.argv.includes('--receiver')) await main()
