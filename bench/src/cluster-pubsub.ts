/**
 * Pub/sub fan-out on a Redis Cluster through rt (issue 18): two RedisBrokers,
 * as two Fastify nodes would have (each its own command and subscriber
 * connections), node A publishing and node B receiving, with `pubsub:
 * 'classic'` (PUBLISH: the cluster bus carries every message to every node) and
 * `pubsub: 'sharded'` (SPUBLISH/SSUBSCRIBE: only the shard owning the stream
 * carries it). Streams spread over every master; publishes/s with CONCURRENCY in
 * flight, publish→delivery latency on node B. Writes results/cluster-pubsub.md/.json.
 * Not part of CI.
 */
import { writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { RedisBroker } from '@rt/redis'
import { startBenchCluster } from './local-cluster.js'

const quick = process.argv.includes('--quick')
const COUNT = quick ? 2000 : 20_000
const STREAMS = 64
const CONCURRENCY = 32

interface Row { mode: string; publishesPerSecond: number; p50: number; p99: number; lost: number }

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

async function measure(nodes: { host: string; port: number }[], pubsub: 'sharded' | 'classic'): Promise<Row> {
  const keyPrefix = `rt-bench-${randomBytes(4).toString('hex')}:`
  const quiet = { warn: () => undefined, error: () => undefined }
  const [a, b] = [0, 1].map(() => new RedisBroker({ cluster: nodes, keyPrefix, pubsub, historyLimit: 100, logger: quiet })) as [RedisBroker, RedisBroker]
  const streams = Array.from({ length: STREAMS }, (_, i) => `s${i}`)
  const latencies: number[] = []
  const seen = new Set<number>()
  try {
    for (const stream of streams) {
      b.subscribe(stream, (message) => {
        const { i, at } = message.data as { i: number; at: string }
        seen.add(i)
        latencies.push(Number(process.hrtime.bigint() - BigInt(at)) / 1e6)
      })
    }
    await Promise.all(streams.map((stream) => b.position(stream)))
    await sleep(500)
    let next = 0
    const started = process.hrtime.bigint()
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < COUNT) {
        const i = next++
        await a.publish(streams[i % STREAMS]!, { i, at: String(process.hrtime.bigint()) })
      }
    }))
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    for (let wait = 0; wait < 100 && seen.size < COUNT; wait++) await sleep(50)
    latencies.sort((x, y) => x - y)
    return { mode: pubsub, publishesPerSecond: Math.round(COUNT / seconds), p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), lost: COUNT - seen.size }
  } finally {
    await a.close()
    await b.close()
  }
}

const cluster = await startBenchCluster(32000)
try {
  const rows: Row[] = []
  // Twice each, alternating, so neither mode always runs on a warm (or cold) cluster.
  for (const pubsub of ['classic', 'sharded', 'classic', 'sharded'] as const) rows.push(await measure(cluster.nodes, pubsub))
  const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 2 })
  const lines = [
    `# Redis Cluster pub/sub: classic vs sharded${quick ? ' (quick)' : ''}`,
    '',
    `${new Date().toISOString()}, 3 masters + 3 replicas on loopback, ${COUNT} publishes over ${STREAMS} streams, ${CONCURRENCY} in flight, two RedisBrokers (node A publishes, node B receives); publish→delivery latency on B.`,
    '',
    '| pubsub | publishes/s | delivery p50 ms | p99 ms | lost |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.mode} | ${fmt(r.publishesPerSecond)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.lost} |`),
    ''
  ]
  const out = new URL(`../results/cluster-pubsub${quick ? '-quick' : ''}`, import.meta.url)
  writeFileSync(`${out.pathname}.md`, lines.join('\n'))
  writeFileSync(`${out.pathname}.json`, JSON.stringify({ count: COUNT, rows }, null, 2) + '\n')
  console.log(lines.join('\n'))
} finally {
  await cluster.stop()
}
