/**
 * Publish → delivery latency and publish throughput through Redis with two
 * nodes (two RedisBrokers, each with its own connections, as two processes
 * would have), against the memory broker in the same run. The Redis rows run
 * `--runs` times (default 3), alternating: publishes batched per stream (the
 * default, `publishBatch` 100) and one script call per publish
 * (`publishBatch: 1`, rt before batching), so their ratio is taken under the
 * same load. Loopback Redis at REDIS_URL (default 127.0.0.1:6379); bounded in
 * count; writes results/redis-latency.md and .json. Not part of CI.
 */
import { writeFileSync } from 'node:fs'
import { hostname, cpus, loadavg } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { Broker } from '@rt/core'
import { MemoryBroker } from '@rt/core'
import { RedisBroker } from '@rt/redis'
import { Redis } from 'ioredis'

const quick = process.argv.includes('--quick')
const COUNT = quick ? 500 : 5000
const runsAt = process.argv.indexOf('--runs')
const RUNS = runsAt > 0 ? Math.max(1, Number.parseInt(process.argv[runsAt + 1] ?? '3', 10) || 3) : 3
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

interface Row {
  broker: string
  run: number
  sequentialPerSecond: number
  p50: number
  p99: number
  pipelinedPerSecond: number
  /** CPU of this process (both nodes) per concurrent publish, µs: publishing on A and receiving on B. */
  cpuUsPerPublish: number
  lost: number
  duplicates: number
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

/** Publishes COUNT messages on `publisher`, one after another, and COUNT more all at once; `subscriber` receives them. */
async function measure(name: string, run: number, publisher: Broker, subscriber: Broker): Promise<Row> {
  const stream = `bench-latency-${randomBytes(4).toString('hex')}`
  const seen = new Map<number, number>()
  const latencies: number[] = []
  let duplicates = 0
  const stop = subscriber.subscribe(stream, (message) => {
    const { i, at } = message.data as { i: number; at: number }
    if (seen.has(i)) duplicates++
    seen.set(i, 1)
    if (i < COUNT) latencies.push(Number(process.hrtime.bigint() - BigInt(at)) / 1e6)
  })
  // Let the subscription reach Redis before the first publish.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const started = process.hrtime.bigint()
  for (let i = 0; i < COUNT; i++) await publisher.publish(stream, { i, at: String(process.hrtime.bigint()) })
  const sequential = COUNT / (Number(process.hrtime.bigint() - started) / 1e9)
  const cpuStart = process.cpuUsage()
  const pipelinedStart = process.hrtime.bigint()
  await Promise.all(Array.from({ length: COUNT }, (_, k) => publisher.publish(stream, { i: COUNT + k, at: String(process.hrtime.bigint()) })))
  const pipelined = COUNT / (Number(process.hrtime.bigint() - pipelinedStart) / 1e9)
  for (let wait = 0; wait < 100 && seen.size < 2 * COUNT; wait++) await new Promise((resolve) => setTimeout(resolve, 5))
  const cpu = process.cpuUsage(cpuStart)
  stop()
  latencies.sort((a, b) => a - b)
  return {
    broker: name,
    run,
    sequentialPerSecond: Math.round(sequential),
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    pipelinedPerSecond: Math.round(pipelined),
    cpuUsPerPublish: (cpu.user + cpu.system) / COUNT,
    lost: 2 * COUNT - seen.size,
    duplicates
  }
}

const BATCHED = '@rt/redis (publishBatch 100, the default), publish on node A, receive on node B'
const SINGLE = '@rt/redis, one script call per publish (publishBatch 1)'
const memory = new MemoryBroker({ historyLimit: 100 })
const keyPrefix = `rt-bench-${randomBytes(4).toString('hex')}:`
const open: Broker[] = [memory]
/** Two nodes on the same Redis, each with its own connections. */
function nodes(publishBatch?: number): [RedisBroker, RedisBroker] {
  const options = { url, keyPrefix, ...(publishBatch === undefined ? {} : { publishBatch }) }
  const pair: [RedisBroker, RedisBroker] = [new RedisBroker(options), new RedisBroker(options)]
  open.push(...pair)
  return pair
}
try {
  const rows: Row[] = [await measure('memory broker (one process)', 1, memory, memory)]
  for (let run = 1; run <= RUNS; run++) {
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
  const ratios = Array.from({ length: RUNS }, (_, k) => {
    const batched = rows.find((r) => r.run === k + 1 && r.broker === BATCHED)!
    const single = rows.find((r) => r.run === k + 1 && r.broker === SINGLE)!
    return { run: k + 1, throughput: batched.pipelinedPerSecond / single.pipelinedPerSecond, cpu: batched.cpuUsPerPublish / single.cpuUsPerPublish }
  })
  const lines = [
    `# Redis with two nodes vs the memory broker${quick ? ' (quick)' : ''}`,
    '',
    `${hostname()}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}, ${new Date().toISOString()}, ${COUNT} sequential + ${COUNT} concurrent publishes per row, ${RUNS} runs of each Redis row (alternating), Redis on loopback, load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}.`,
    '',
    'Latency is measured on the sequential publishes (one in flight). CPU is this process (node A publishing, node B receiving) per concurrent publish.',
    '',
    '| broker | run | status | sequential publishes/s | publish→delivery p50 ms | p99 ms | concurrent publishes/s | CPU µs per concurrent publish | lost | dup |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.broker} | ${r.run} | ${r.lost === 0 && r.duplicates === 0 ? 'ok' : 'FAIL'} | ${fmt(r.sequentialPerSecond)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.pipelinedPerSecond)} | ${r.cpuUsPerPublish.toFixed(1)} | ${r.lost} | ${r.duplicates} |`),
    '',
    `Batched ÷ one call per publish, concurrent publishes/s: ${ratios.map((r) => `${r.throughput.toFixed(2)}×`).join(', ')} (runs ${ratios.map((r) => r.run).join(', ')}); CPU per publish: ${ratios.map((r) => `${r.cpu.toFixed(2)}×`).join(', ')}.`,
    `Memory broker: ${fmt(mem.sequentialPerSecond)} sequential, ${fmt(mem.pipelinedPerSecond)} concurrent publishes/s.`,
    ''
  ]
  const out = new URL(`../results/redis-latency${quick ? '-quick' : ''}`, import.meta.url)
  writeFileSync(`${out.pathname}.md`, lines.join('\n'))
  writeFileSync(`${out.pathname}.json`, JSON.stringify({ count: COUNT, runs: RUNS, rows, ratios }, null, 2) + '\n')
  console.log(lines.join('\n'))
} finally {
  for (const broker of open) await broker.close()
  // Leave nothing behind in Redis.
  const redis = new Redis(url)
  const keys = await redis.keys(`${keyPrefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
}
