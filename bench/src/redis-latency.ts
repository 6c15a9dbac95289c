/**
 * Publish → delivery latency and publish throughput through Redis with two
 * nodes (two RedisBrokers, each with its own connections, as two processes
 * would have), against the memory broker in the same run. Loopback Redis at
 * REDIS_URL (default 127.0.0.1:6379); bounded in count; writes
 * results/redis-latency.md and .json. Not part of CI.
 */
import { writeFileSync } from 'node:fs'
import { hostname, cpus } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { Broker } from '@rt/core'
import { MemoryBroker } from '@rt/core'
import { RedisBroker } from '@rt/redis'
import { Redis } from 'ioredis'

const quick = process.argv.includes('--quick')
const COUNT = quick ? 500 : 5000
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

interface Row { broker: string; sequentialPerSecond: number; p50: number; p99: number; pipelinedPerSecond: number; lost: number; duplicates: number }

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

/** Publishes COUNT messages on `publisher`, one after another, and COUNT more all at once; `subscriber` receives them. */
async function measure(name: string, publisher: Broker, subscriber: Broker): Promise<Row> {
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
  const pipelinedStart = process.hrtime.bigint()
  await Promise.all(Array.from({ length: COUNT }, (_, k) => publisher.publish(stream, { i: COUNT + k, at: String(process.hrtime.bigint()) })))
  const pipelined = COUNT / (Number(process.hrtime.bigint() - pipelinedStart) / 1e9)
  for (let wait = 0; wait < 100 && seen.size < 2 * COUNT; wait++) await new Promise((resolve) => setTimeout(resolve, 50))
  stop()
  latencies.sort((a, b) => a - b)
  return {
    broker: name,
    sequentialPerSecond: Math.round(sequential),
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    pipelinedPerSecond: Math.round(pipelined),
    lost: 2 * COUNT - seen.size,
    duplicates
  }
}

const memory = new MemoryBroker({ historyLimit: 100 })
const keyPrefix = `rt-bench-${randomBytes(4).toString('hex')}:`
const nodeA = new RedisBroker({ url, keyPrefix })
const nodeB = new RedisBroker({ url, keyPrefix })
try {
  const rows = [
    await measure('memory broker (one process)', memory, memory),
    await measure('@rt/redis, publish on node A, receive on node B', nodeA, nodeB)
  ]
  const [mem, redis] = rows as [Row, Row]
  const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 3 })
  const lines = [
    `# Redis with two nodes vs the memory broker${quick ? ' (quick)' : ''}`,
    '',
    `${hostname()}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}, ${new Date().toISOString()}, ${COUNT} sequential + ${COUNT} concurrent publishes, Redis on loopback.`,
    '',
    '| broker | status | sequential publishes/s | publish→delivery p50 ms | p99 ms | concurrent publishes/s | lost | dup |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.broker} | ${r.lost === 0 && r.duplicates === 0 ? 'ok' : 'FAIL'} | ${fmt(r.sequentialPerSecond)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.pipelinedPerSecond)} | ${r.lost} | ${r.duplicates} |`),
    '',
    `Redis ÷ memory: sequential throughput ${fmt(redis.sequentialPerSecond / mem.sequentialPerSecond)}×, concurrent ${fmt(redis.pipelinedPerSecond / mem.pipelinedPerSecond)}×, p50 latency +${fmt(redis.p50 - mem.p50)} ms, p99 +${fmt(redis.p99 - mem.p99)} ms.`,
    ''
  ]
  const out = new URL(`../results/redis-latency${quick ? '-quick' : ''}`, import.meta.url)
  writeFileSync(`${out.pathname}.md`, lines.join('\n'))
  writeFileSync(`${out.pathname}.json`, JSON.stringify({ count: COUNT, rows }, null, 2) + '\n')
  console.log(lines.join('\n'))
} finally {
  await nodeA.close()
  await nodeB.close()
  await memory.close()
  // Leave nothing behind in Redis.
  const redis = new Redis(url)
  const keys = await redis.keys(`${keyPrefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
}
