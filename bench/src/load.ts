import http from 'node:http'
import { Histogram } from './histogram.js'
import { CategoryPollClient, CeilingPollClient, ExpressLongpollClient, SocketIoClient, type BenchClient, type PollContext } from './poll-clients.js'
import type { LoadJob, LoadResult } from './protocol.js'
import { CategoryHelperClient, RtLongPollClient } from './rt-clients.js'
import { SseClient } from './sse-client.js'
import { account, ClientTracker, now } from './tracker.js'

/**
 * The load generator of one process: opens its share of the clients, counts
 * what each receives, and reports losses, duplicates and latency once the
 * publisher's per-stream counts are known.
 */
export class LoadRun {
  readonly latency = new Histogram()
  readonly clients: BenchClient[] = []
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })
  firstReceive = 0
  lastReceive = 0
  failedToConnect = 0
  private readonly cpuStart = process.cpuUsage()

  constructor (readonly job: LoadJob) {}

  private readonly onMessage = (at: number): void => {
    if (this.firstReceive === 0) this.firstReceive = at
    this.lastReceive = at
  }

  private create (stream: number): BenchClient {
    const job = this.job
    const tracker = new ClientTracker(stream)
    const name = `${job.streamPrefix}${stream}`
    const context: PollContext = { port: job.port, agent: this.agent, latency: this.latency, onMessage: this.onMessage, holdSeconds: job.holdSeconds }
    switch (job.kind) {
      case 'sse':
        return new SseClient(tracker, this.latency, {
          port: job.port,
          path: (job.path ?? '/sse?stream={stream}').replace('{stream}', encodeURIComponent(name)),
          readyMarker: job.readyMarker,
          maxReconnects: job.maxReconnects,
          localAddress: job.localAddress
        }, this.onMessage)
      case 'ceiling-lp':
        return new CeilingPollClient(tracker, context)
      case 'rt-lp':
        return new RtLongPollClient(tracker, context, job.path ?? '/lp', name)
      case 'socketio':
        return new SocketIoClient(tracker, context)
      case 'category':
        return new CategoryPollClient(tracker, context, job.path ?? '/events', name)
      case 'category-helper':
        return new CategoryHelperClient(tracker, context, job.path ?? '/events', name)
      case 'express-longpoll':
        return new ExpressLongpollClient(tracker, context)
    }
  }

  /** Opens every client, `connectConcurrency` at a time. Resolves with how many made it. */
  async open (): Promise<{ connected: number; failed: number; ms: number }> {
    const started = now()
    const queue = this.job.streams.slice()
    const worker = async (): Promise<void> => {
      for (let stream = queue.shift(); stream !== undefined; stream = queue.shift()) {
        const client = this.create(stream)
        this.clients.push(client)
        try {
          await client.open(this.job.connectTimeoutMs)
        } catch {
          this.failedToConnect++
        }
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, this.job.connectConcurrency) }, worker))
    return { connected: this.clients.length - this.failedToConnect, failed: this.failedToConnect, ms: now() - started }
  }

  /** Reconnect storm: every SSE client drops its connection now and resumes with Last-Event-ID. */
  drop (at: number): void {
    for (const client of this.clients) {
      client.tracker.catchUpAfter = at
      if (client instanceof SseClient) client.drop()
    }
  }

  /** Closes every client (after {@link finish}: the server's CPU is read before the disconnections cost it anything). */
  stop (): void {
    for (const client of this.clients) client.close()
    this.agent.destroy()
  }

  /** Waits until every client got every message its stream was sent, or until `deadline` (shared clock, ms); clients stay open. */
  async finish (published: number[], deadline: number): Promise<LoadResult> {
    const complete = (): boolean => this.clients.every((client) => client.tracker.complete(published[client.tracker.stream] ?? 0))
    while (!complete() && now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const totals = account(this.clients.map((client) => client.tracker), published)
    let caughtUp = 0
    let lastCaughtUpAt = 0
    for (const client of this.clients) {
      const at = client.tracker.caughtUpAt
      if (at === undefined) continue
      caughtUp++
      if (at > lastCaughtUpAt) lastCaughtUpAt = at
    }
    const cpu = process.cpuUsage(this.cpuStart)
    return {
      ...totals,
      failedToConnect: this.failedToConnect,
      reconnects: this.clients.reduce((sum, client) => sum + client.reconnects, 0),
      errors: this.clients.reduce((sum, client) => sum + client.errors, 0),
      polls: this.clients.reduce((sum, client) => sum + client.polls, 0),
      latency: this.latency.toSparse(),
      latencyMax: this.latency.max,
      firstReceive: this.firstReceive,
      lastReceive: this.lastReceive,
      caughtUp,
      lastCaughtUpAt,
      cpuMs: (cpu.user + cpu.system) / 1000
    }
  }
}
