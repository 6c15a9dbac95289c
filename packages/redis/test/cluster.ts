import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

const run = promisify(execFile)

/** Milliseconds before a silent node counts as failing; small so that a failover takes a few seconds, not 15. */
export const NODE_TIMEOUT = 1000

/** One redis-server of the cluster. */
export interface ClusterServer {
  port: number
  process: ChildProcess
  /** Whether the test killed it. */
  killed: boolean
}

/** A local Redis Cluster: 3 masters, 3 replicas, started and torn down by one test file. */
export interface LocalCluster {
  servers: ClusterServer[]
  /** `[{ host, port }]` of every node, for `new Cluster()` or rt's `cluster` option. */
  nodes: { host: string; port: number }[]
  /** A plain connection to one node. */
  node(port: number): Redis
  /** The port of the master serving `key`'s slot now. */
  masterOf(key: string): Promise<number>
  /** Kills a node with SIGKILL; resolves once its process has exited. */
  kill(port: number): Promise<void>
  /** Starts a killed node again on its port, with its cluster config and no data; resolves once it answers. */
  restart(port: number): Promise<void>
  /** Waits until every slot has a live master and the cluster says ok on every live node. */
  healthy(what: string): Promise<void>
}

/** A loopback TCP port nobody listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.on('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await freePort()
    if (port <= 55_000 && !taken.has(port) && (await portFree(port + 10_000))) return port
  }
  throw new Error('no free port pair for a cluster node')
}

async function ping(port: number): Promise<boolean> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
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

async function within(what: string, attempts: number, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return
    await sleep(100)
  }
  throw new Error(`cluster: timed out waiting for ${what}`)
}

/**
 * Starts six `redis-server`s on free ports (cluster mode, no persistence, files
 * in a temp folder), joins them with `redis-cli --cluster create --cluster-replicas 1`,
 * and waits until the cluster is ok with every replica in sync. Everything is
 * stopped by pid and the folder removed when `t` ends. Fails (never skips) when
 * redis-server or redis-cli is missing.
 */
export async function startCluster(t: Test): Promise<LocalCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'rt-cluster-'))
  const servers: ClusterServer[] = []
  const clients: Redis[] = []
  t.teardown(async () => {
    for (const client of clients) client.disconnect()
    await Promise.all(servers.map(async (server) => {
      if (server.process.exitCode !== null || server.process.signalCode !== null) return
      const exited = new Promise((resolve) => server.process.once('exit', resolve))
      server.process.kill('SIGKILL')
      await exited
    }))
    await rm(dir, { recursive: true, force: true })
  })
  const taken = new Set<number>()
  const launch = async (port: number): Promise<ChildProcess> => {
    const child = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', String(NODE_TIMEOUT),
      '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', join(dir, `${port}.log`)
    ], { stdio: 'ignore' })
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', (error) => reject(new Error(`cluster: cannot start redis-server (${error.message}); install redis-server`)))
    })
    return child
  }
  for (let i = 0; i < 6; i++) {
    const port = await clusterPort(taken)
    taken.add(port)
    servers.push({ port, process: await launch(port), killed: false })
  }
  for (const { port } of servers) await within(`redis-server on port ${port}`, 50, () => ping(port))
  const addresses = servers.map(({ port }) => `127.0.0.1:${port}`)
  try {
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 })
  } catch (error) {
    throw new Error(`cluster: redis-cli --cluster create failed (${(error as Error).message}); install redis-cli (redis-tools)`)
  }

  const node = (port: number): Redis => {
    const client = new Redis({ port, host: '127.0.0.1', retryStrategy: () => null, maxRetriesPerRequest: 0 })
    client.on('error', () => undefined)
    clients.push(client)
    return client
  }
  const live = (): ClusterServer[] => servers.filter((server) => !server.killed)
  const info = async (port: number, section: string): Promise<string> => {
    const client = node(port)
    try {
      return section === 'cluster' ? String(await client.cluster('INFO')) : await client.info(section)
    } finally {
      client.disconnect()
    }
  }
  const healthy = async (what: string): Promise<void> => {
    await within(what, 300, async () => {
      for (const { port } of live()) {
        const cluster = await info(port, 'cluster').catch(() => '')
        if (!cluster.includes('cluster_state:ok') || !cluster.includes('cluster_slots_ok:16384')) return false
        const replication = await info(port, 'replication').catch(() => '')
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false
      }
      return true
    })
  }
  await healthy('the new cluster to be ok on every node')

  return {
    servers,
    nodes: servers.map(({ port }) => ({ host: '127.0.0.1', port })),
    node,
    healthy,
    async masterOf(key) {
      const client = node(live()[0]!.port)
      try {
        const slot = Number(await client.cluster('KEYSLOT', key))
        const ranges = await client.cluster('SLOTS')
        const master = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2]
        if (master === undefined) throw new Error(`cluster: slot ${slot} has no master`)
        return master[1]
      } finally {
        client.disconnect()
      }
    },
    async kill(port) {
      const server = servers.find((candidate) => candidate.port === port)!
      server.killed = true
      const exited = new Promise((resolve) => server.process.once('exit', resolve))
      server.process.kill('SIGKILL')
      await exited
    },
    async restart(port) {
      const server = servers.find((candidate) => candidate.port === port)!
      server.process = await launch(port)
      server.killed = false
      await within(`redis-server on port ${port} to come back`, 50, () => ping(port))
    }
  }
}
