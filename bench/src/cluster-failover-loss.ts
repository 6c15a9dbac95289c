/**
 * How many acknowledged publishes a Redis Cluster failover loses (issue 18).
 * Each run: a fresh local cluster, two RedisBrokers (two nodes) publishing
 * steadily to one stream per master, SIGKILL of one master, then — once its
 * replica is promoted, before rt touches the stream again — the promoted
 * master's offset counter is read raw: every acknowledged offset above it was
 * lost. (rt then starts a new epoch on that stream, so readers are told.)
 * 20 runs by default (`--runs N`); writes results/cluster-failover-loss.md/.json. Not part of CI.
 */
import { writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { RedisBroker } from '@rt/redis'
import { Redis } from 'ioredis'
import { startBenchCluster } from './local-cluster.js'

const runsArg = process.argv.indexOf('--runs')
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 20
const CONCURRENCY = 4
const prefix = 'rt-bench:'

interface Run { run: number; acknowledged: number; lastAcked: number; promotedOffset: number; lost: number; failoverMs: number }
const runs: Run[] = []
for (let run = 1; run <= RUNS; run++) {
  const cluster = await startBenchCluster(31000 + (run % 2) * 100)
  const nodes = [0, 1].map(() => new RedisBroker({ cluster: cluster.nodes, keyPrefix: prefix, logger: { warn: () => undefined, error: () => undefined } }))
  try {
    const byMaster = new Map<number, string>()
    for (let i = 0; byMaster.size < 3; i++) {
      const master = await cluster.masterOf(`${prefix}{s${i}}:m`)
      if (!byMaster.has(master)) byMaster.set(master, `s${i}`)
    }
    const [victim, stream] = [...byMaster.entries()][0]!
    const acked: number[] = []
    let stop = false
    let count = 0
    const workers = [...byMaster.values()].flatMap((name) => Array.from({ length: CONCURRENCY }, async (_, w) => {
      while (!stop) {
        try {
          const message = await nodes[(count++ + w) % 2]!.publish(name, count)
          if (name === stream) acked.push(message.offset)
        } catch {
          await sleep(5)
        }
      }
    }))
    await sleep(1000)
    const killedAt = Date.now()
    await cluster.kill(victim)
    // Whatever was in flight has been answered (acknowledged or failed) by now.
    await sleep(200)
    stop = true
    await Promise.all(workers)
    let promoted = victim
    while (promoted === victim) {
      await sleep(50)
      promoted = await cluster.masterOf(`${prefix}{${stream}}:m`).catch(() => victim)
    }
    const failoverMs = Date.now() - killedAt
    const raw = new Redis({ port: promoted })
    const promotedOffset = Number(await raw.hget(`${prefix}{${stream}}:m`, 'offset'))
    raw.disconnect()
    const lastAcked = Math.max(...acked)
    const lost = acked.filter((offset) => offset > promotedOffset).length
    runs.push({ run, acknowledged: acked.length, lastAcked, promotedOffset, lost, failoverMs })
    console.log(`run ${run}: ${acked.length} acknowledged on the killed master's stream, last offset ${lastAcked}, promoted replica has ${promotedOffset}: ${lost} lost; promoted after ${failoverMs} ms`)
  } finally {
    await Promise.all(nodes.map((node) => node.close()))
    await cluster.stop()
  }
}
const lost = runs.map((r) => r.lost)
const total = lost.reduce((a, b) => a + b, 0)
const lines = [
  `# Acknowledged publishes lost by a Redis Cluster failover (${RUNS} runs)`,
  '',
  `${new Date().toISOString()}, Redis Cluster 3 masters + 3 replicas on loopback, cluster-node-timeout 1000 ms, ${CONCURRENCY} publishes in flight per stream from each of 2 nodes, then SIGKILL of one master.`,
  '',
  '| run | acknowledged | last acknowledged offset | offset on the promoted replica | lost | kill → promotion ms |',
  '|---:|---:|---:|---:|---:|---:|',
  ...runs.map((r) => `| ${r.run} | ${r.acknowledged} | ${r.lastAcked} | ${r.promotedOffset} | ${r.lost} | ${r.failoverMs} |`),
  '',
  `Lost in total: ${total} over ${RUNS} runs; runs with a loss: ${lost.filter((n) => n > 0).length}; most in one run: ${Math.max(...lost)}.`,
  ''
]
const out = new URL('../results/cluster-failover-loss', import.meta.url)
writeFileSync(`${out.pathname}.md`, lines.join('\n'))
writeFileSync(`${out.pathname}.json`, JSON.stringify({ runs }, null, 2) + '\n')
console.log(lines.join('\n'))
