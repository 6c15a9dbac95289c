import { Histogram } from './histogram.js'
import { LoadProcess, ServerProcess } from './processes.js'
import type { ClientKind, LoadResult, PublishPlan, PublishReport, ServerStats } from './protocol.js'
import type { TargetOptions } from './servers/target.js'
import { now } from './tracker.js'

/** One delivery run: a server, its clients spread over the load processes, a publish plan. */
export interface DeliverySpec {
  target: string
  label: string
  kind: ClientKind
  path?: string
  readyMarker?: string
  clients: number
  streams: number
  rate: number
  durationMs: number
  /** Longest wait after the last publish for clients to get everything. */
  drainMs: number
  /** Pause between the last client connecting and the idle RSS reading. */
  settleMs: number
  holdSeconds: number
  historyLimit: number
  /** Reconnect storm: every client drops its connection this far into publishing. */
  dropAtMs?: number
  /**
   * Server processes of the target, each on its own port with its share of the
   * clients, publishing the same plan in process (default 1). For more
   * connections than one process may hold descriptors for (`ulimit -Hn`).
   */
  servers?: number
  /** Load processes of this row's own (default: the shared pool); load process i talks to server i % servers. */
  loadProcesses?: number
  /** Load process i connects from 127.0.0.(10 + i), so that each has the whole ephemeral port range. */
  localAddresses?: boolean
  /** How long one client may take to be ready (default 20 s). */
  connectTimeoutMs?: number
}

/** What a row of the results table holds. */
export interface Row {
  target: string
  label: string
  /** `ok`, `FAIL: …` (lost/duplicated messages, clients that never connected) or `not measured: …`. */
  status: string
  clients?: number
  connected?: number
  sentPerSec?: number
  deliveredPerSec?: number
  delivered?: number
  expected?: number
  lost?: number
  duplicates?: number
  clientsWithLoss?: number
  p50?: number
  p99?: number
  maxLatency?: number
  rssIdleKbPerConn?: number
  rssLoadKbPerConn?: number
  cpuPercent?: number
  /** Deliveries (or requests) per second of server CPU time. */
  perCpuSecond?: number
  reconnects?: number
  errors?: number
  /** Poll requests answered per second while publishing (polling transports). */
  pollsPerSec?: number
  connectMs?: number
  /** Reconnect storm: time from the drop until every client was caught up, ms. */
  catchUpMs?: number
  caughtUp?: number
  /** Requests/s (autocannon rows and in-process publish). */
  requestsPerSec?: number
  non2xx?: number
}

export interface Pool {
  loads: LoadProcess[]
  /** Replaces the load processes (after a failed run, so no half-finished job lingers). */
  renew(): void
}

export function createPool (size: number): Pool {
  const pool: Pool = {
    loads: Array.from({ length: size }, () => new LoadProcess()),
    renew () {
      for (const load of pool.loads) {
        load.child.kill('SIGKILL')
      }
      pool.loads = Array.from({ length: size }, () => new LoadProcess())
    }
  }
  return pool
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function statusOf (row: Row): string {
  const problems: string[] = []
  if ((row.connected ?? 0) < (row.clients ?? 0)) problems.push(`${(row.clients ?? 0) - (row.connected ?? 0)} clients never connected`)
  if ((row.lost ?? 0) > 0) problems.push(`lost ${row.lost} msgs (${row.clientsWithLoss} clients)`)
  if ((row.duplicates ?? 0) > 0) problems.push(`${row.duplicates} duplicates`)
  return problems.length === 0 ? 'ok' : `FAIL: ${problems.join(', ')}`
}

/** Runs one delivery spec end to end; a failure to start or to finish becomes the row's status. */
/** The servers of one row, read and driven as one: RSS and CPU summed, the clock of the first. */
class ServerSet {
  constructor (readonly servers: ServerProcess[]) {}

  async stats (gc = false): Promise<ServerStats> {
    const all = await Promise.all(this.servers.map((server) => server.stats(gc)))
    const sum = (pick: (s: ServerStats) => number): number => all.reduce((total, s) => total + pick(s), 0)
    return { rss: sum((s) => s.rss), peakRss: sum((s) => s.peakRss), cpuMs: sum((s) => s.cpuMs), at: (all[0] as ServerStats).at }
  }

  mark (end = false): void {
    for (const server of this.servers) server.mark(end)
  }

  /** Every server publishes the plan; the report of each server is for the clients connected to it. */
  async publish (plan: PublishPlan): Promise<PublishReport[]> {
    return Promise.all(this.servers.map((server) => server.publish(plan)))
  }

  async close (): Promise<void> {
    await Promise.all(this.servers.map((server) => server.close()))
  }
}

/** Runs one delivery spec end to end; a failure to start or to finish becomes the row's status. */
export async function deliver (shared: Pool, spec: DeliverySpec, profileDir?: string): Promise<Row> {
  const options: TargetOptions = { streamPrefix: 'bench-', streams: spec.streams, historyLimit: spec.historyLimit, holdSeconds: spec.holdSeconds }
  const pool = spec.loadProcesses === undefined ? shared : createPool(spec.loadProcesses)
  let server: ServerSet | undefined
  try {
    const started = await Promise.allSettled(Array.from({ length: spec.servers ?? 1 }, () => ServerProcess.start(spec.target, options, profileDir)))
    server = new ServerSet(started.flatMap((result) => result.status === 'fulfilled' ? [result.value] : []))
    const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    const servers = server.servers
    const base = await server.stats(true)
    const shares: number[][] = pool.loads.map(() => [])
    for (let client = 0; client < spec.clients; client++) (shares[client % shares.length] as number[]).push(client % spec.streams)
    const connectTimeoutMs = spec.connectTimeoutMs ?? 20_000
    const opened = await Promise.all(pool.loads.map((load, i) => load.start({
      kind: spec.kind,
      port: (servers[i % servers.length] as ServerProcess).port,
      ...(spec.localAddresses === true ? { localAddress: `127.0.0.${10 + i}` } : {}),
      streams: shares[i] as number[],
      path: spec.path,
      readyMarker: spec.readyMarker,
      streamPrefix: options.streamPrefix,
      holdSeconds: spec.holdSeconds,
      connectConcurrency: 64,
      connectTimeoutMs,
      maxReconnects: 20
    }, connectTimeoutMs + spec.clients * 10 + 10_000)))
    const connected = opened.reduce((sum, o) => sum + o.connected, 0)
    await sleep(spec.settleMs)
    // After a full collection: what the connections hold, not the garbage their connecting left (every target alike).
    const idle = await server.stats(true)
    server.mark()
    const publishing = server.publish({ rate: spec.rate, durationMs: spec.durationMs, streams: spec.streams })
    // Awaited below; a failure during the storm's wait must not count as unhandled meanwhile.
    publishing.catch(() => undefined)
    let dropAt = 0
    if (spec.dropAtMs !== undefined) {
      await sleep(spec.dropAtMs)
      dropAt = now()
      for (const load of pool.loads) load.drop(dropAt)
    }
    const reports = await publishing
    const report: PublishReport = {
      counts: (reports[0] as PublishReport).counts,
      sent: reports.reduce((total, r) => total + r.sent, 0),
      start: Math.min(...reports.map((r) => r.start)),
      end: Math.max(...reports.map((r) => r.end))
    }
    const deadline = now() + spec.drainMs
    const results: LoadResult[] = await Promise.all(pool.loads.map((load, i) => load.finish((reports[i % reports.length] as PublishReport).counts, deadline, spec.drainMs + 30_000)))
    const end = await server.stats()
    server.mark(true)
    await Promise.all(pool.loads.map((load) => load.stopClients()))
    const latency = new Histogram()
    let lastReceive = 0
    let lastCaughtUpAt = 0
    const sum = (pick: (r: LoadResult) => number): number => results.reduce((total, r) => total + pick(r), 0)
    for (const result of results) {
      latency.add(Histogram.fromSparse(result.latency, result.latencyMax).counts, result.latencyMax)
      lastReceive = Math.max(lastReceive, result.lastReceive)
      lastCaughtUpAt = Math.max(lastCaughtUpAt, result.lastCaughtUpAt)
    }
    const delivered = sum((r) => r.delivered)
    const cpuMs = end.cpuMs - idle.cpuMs
    const perConn = (bytes: number): number => connected === 0 ? Number.NaN : bytes / connected / 1024
    const row: Row = {
      target: spec.target,
      label: spec.label,
      status: '',
      clients: spec.clients,
      connected,
      connectMs: Math.max(...opened.map((o) => o.ms)),
      sentPerSec: report.sent / servers.length / ((report.end - report.start) / 1000),
      delivered,
      expected: sum((r) => r.expected),
      deliveredPerSec: lastReceive > report.start ? delivered / ((lastReceive - report.start) / 1000) : 0,
      lost: sum((r) => r.lost),
      duplicates: sum((r) => r.duplicates),
      clientsWithLoss: sum((r) => r.clientsWithLoss),
      p50: latency.percentile(50),
      p99: latency.percentile(99),
      maxLatency: latency.max,
      rssIdleKbPerConn: perConn(idle.rss - base.rss),
      rssLoadKbPerConn: perConn(Math.max(end.peakRss, end.rss) - base.rss),
      cpuPercent: (cpuMs / (end.at - idle.at)) * 100,
      perCpuSecond: cpuMs > 0 ? delivered / (cpuMs / 1000) : Number.NaN,
      reconnects: sum((r) => r.reconnects),
      pollsPerSec: sum((r) => r.polls) > 0 && lastReceive > report.start ? sum((r) => r.polls) / ((lastReceive - report.start) / 1000) : undefined,
      errors: sum((r) => r.errors)
    }
    if (spec.dropAtMs !== undefined) {
      row.caughtUp = sum((r) => r.caughtUp)
      row.catchUpMs = row.caughtUp === connected ? lastCaughtUpAt - dropAt : Number.NaN
    }
    row.status = statusOf(row)
    if (spec.dropAtMs !== undefined && row.caughtUp !== connected) row.status += ` (${connected - (row.caughtUp ?? 0)} clients never caught up)`
    return row
  } catch (error) {
    pool.renew()
    return { target: spec.target, label: spec.label, status: `FAIL: ${error instanceof Error ? error.message : String(error)}` }
  } finally {
    await server?.close()
    if (pool !== shared) for (const load of pool.loads) load.stop()
  }
}
