/**
 * A throw-away local Redis Cluster for the cluster benchmarks: six redis-servers
 * (3 masters, 3 replicas) on loopback ports from `base`, no persistence, files in
 * a temp folder; `stop()` kills every process by pid. (The tests have their own,
 * with free-port discovery: packages/redis/test/cluster.ts.)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'

const run = promisify(execFile)

export interface BenchCluster {
  nodes: { host: string; port: number }[]
  /** Port of the master serving `key` now. */
  masterOf(key: string): Promise<number>
  kill(port: number): Promise<void>
  stop(): Promise<void>
}

async function clusterOk(port: number): Promise<boolean> {
  const client = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  client.on('error', () => undefined)
  try {
    await client.connect()
    const info = String(await client.cluster('INFO'))
    const replication = await client.info('replication')
    return info.includes('cluster_state:ok') && (!replication.includes('role:slave') || replication.includes('master_link_status:up'))
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

async function answers(port: number): Promise<boolean> {
  const client = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  client.on('error', () => undefined)
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

export async function startBenchCluster(base: number, nodeTimeout = 1000): Promise<BenchCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-cluster-'))
  const ports = Array.from({ length: 6 }, (_, i) => base + i)
  const processes = new Map<number, ChildProcess>()
  for (const port of ports) {
    processes.set(port, spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', String(nodeTimeout),
      '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }))
  }
  const kill = async (port: number): Promise<void> => {
    const child = processes.get(port)!
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
  const stop = async (): Promise<void> => {
    await Promise.all(ports.map(kill))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < 100 && !(await Promise.all(ports.map(answers))).every(Boolean); i++) await sleep(100)
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 })
    for (let i = 0; i < 300; i++) {
      if ((await Promise.all(ports.map(clusterOk))).every(Boolean)) break
      await sleep(100)
    }
  } catch (error) {
    await stop()
    throw error
  }
  return {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    kill,
    stop,
    async masterOf(key) {
      for (const port of ports) {
        if (processes.get(port)!.exitCode !== null || processes.get(port)!.signalCode !== null) continue
        const client = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
        client.on('error', () => undefined)
        try {
          await client.connect()
          const slot = Number(await client.cluster('KEYSLOT', key))
          const master = (await client.cluster('SLOTS')).find(([from, to]) => slot >= from && slot <= to)?.[2]
          if (master !== undefined) return master[1]
        } catch {
          // try the next node
        } finally {
          client.disconnect()
        }
      }
      throw new Error(`no master serves ${key}`)
    }
  }
}
