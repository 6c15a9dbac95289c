/**
 * Pub/sub fan-out on a Redis Cluster: classic PUBLISH (the cluster bus carries
 * every message to every node) against sharded SPUBLISH/SSUBSCRIBE (only the
 * shard owning the channel's slot carries it), issue 18. The publish is a Lua
 * script shaped like rt's (XADD + trim + publish on the stream's hash-tagged
 * channel), EVALSHA through an ioredis Cluster; two subscriber connections
 * stand in for two nodes (classic: one Cluster subscriber each, sharded: ioredis'
 * `shardedSubscribers`, one connection per shard each). Streams spread over all
 * slots. Writes results/cluster-pubsub.md/.json. Not part of CI.
 */
import { writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster } from 'ioredis'
import { startBenchCluster } from './local-cluster.js'

const quick = process.argv.includes('--quick')
const COUNT = quick ? 2000 : 20_000
const STREAMS = 64
const CONCURRENCY = 32

const script = (command: string): string => `
redis.call('XADD', KEYS[1], '*', 'b', ARGV[1])
redis.call('XTRIM', KEYS[1], 'MAXLEN', 100)
redis.call('${command}', ARGV[2], ARGV[1])
return 1`

interface Row { mode: string; publishesPerSecond: number; p50: number; p99: number; lost: number }

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

async function measure(nodes: { host: string; port: number }[], sharded: boolean): Promise<Row> {
  const mode = sharded ? 'sharded (SPUBLISH / SSUBSCRIBE)' : 'classic (PUBLISH / SUBSCRIBE)'
  const tag = sharded ? 'sh' : 'cl'
  const publisher = new Cluster(nodes)
  const subscribers = [0, 1].map(() => new Cluster(nodes, { shardedSubscribers: sharded }))
  const channels = Array.from({ length: STREAMS }, (_, i) => `bench:{${tag}${i}}:p`)
  const latencies: number[] = []
  const seen = [new Set<number>(), new Set<number>()]
  try {
    for (const [index, subscriber] of subscribers.entries()) {
      subscriber.on(sharded ? 'smessage' : 'message', (_channel: string, payload: string) => {
        const { i, at } = JSON.parse(payload) as { i: number; at: string }
        seen[index]!.add(i)
        latencies.push(Number(process.hrtime.bigint() - BigInt(at)) / 1e6)
      })
      for (const channel of channels) await (sharded ? subscriber.ssubscribe(channel) : subscriber.subscribe(channel))
    }
    await sleep(300)
    const source = script(sharded ? 'SPUBLISH' : 'PUBLISH')
    let next = 0
    const started = process.hrtime.bigint()
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < COUNT) {
        const i = next++
        const stream = i % STREAMS
        await publisher.eval(source, 1, `bench:{${tag}${stream}}:h`, JSON.stringify({ i, at: String(process.hrtime.bigint()) }), channels[stream]!)
      }
    }))
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    for (let wait = 0; wait < 100 && seen.some((set) => set.size < COUNT); wait++) await sleep(50)
    latencies.sort((a, b) => a - b)
    return { mode, publishesPerSecond: Math.round(COUNT / seconds), p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), lost: 2 * COUNT - seen[0]!.size - seen[1]!.size }
  } finally {
    publisher.disconnect()
    for (const subscriber of subscribers) subscriber.disconnect()
  }
}

const cluster = await startBenchCluster(32000)
try {
  const rows: Row[] = []
  // Twice each, alternating, so neither mode always runs on a warm (or cold) cluster.
  for (const sharded of [false, true, false, true]) rows.push(await measure(cluster.nodes, sharded))
  const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 2 })
  const lines = [
    `# Redis Cluster pub/sub: classic vs sharded${quick ? ' (quick)' : ''}`,
    '',
    `${new Date().toISOString()}, 3 masters + 3 replicas on loopback, ${COUNT} publishes over ${STREAMS} streams, ${CONCURRENCY} in flight, 2 subscriber nodes; publish→delivery latency over both nodes.`,
    '',
    '| mode | publishes/s | delivery p50 ms | p99 ms | lost |',
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
