import { Session, type Hub, type Metrics, type SessionState, type StreamMessage } from '@rt/core'
import type { FastifyBaseLogger } from 'fastify'
import type { ResolvedOptions } from './options.js'
import type { Poll } from './poll.js'

/**
 * What long polling keeps in `state.transport`: plain JSON in the session
 * store, so any process can answer the next poll and expire an idle session.
 */
export interface LongPollState {
  /** ms since the epoch: the session expires unless a request comes by then (covers a request in flight). */
  expiresAt: number
  /** Lease of the last request that finished. A higher current lease means a request is in flight. */
  settled: number
  /** Set when keepalive expired the session: its next poll gets `session_expired`. */
  expired?: boolean
}

export function readState(state: SessionState): LongPollState {
  const t = state.transport as Partial<LongPollState>
  return {
    expiresAt: typeof t.expiresAt === 'number' ? t.expiresAt : 0,
    settled: typeof t.settled === 'number' ? t.settled : state.lease,
    ...(t.expired === true ? { expired: true } : {})
  }
}

/**
 * The stream that coordinates the requests of one session across processes:
 * `end` asks the request in flight (lease ≤ `lease`) to answer empty at once,
 * `released` says the request with that lease has answered and saved.
 */
export const pollControlStream = (sid: string): string => `$rt:lp:${sid}`

export interface ControlMessage {
  type: 'end' | 'released'
  lease: number
}

/**
 * One request's subscription to its session's control stream. It remembers
 * what it heard before anyone asked (an `end` for the lease it is about to
 * claim, a `released` before the request starts waiting), so no control
 * message is lost to the order in which they arrive.
 */
export class Control {
  /** The lease of this request, once it claimed the session. */
  lease: number | undefined
  private endUpTo = -1
  private releasedUpTo = -1
  private waiter: { lease: number; resolve: () => void } | undefined
  private readonly unsubscribe: () => void

  constructor(private readonly hub: Hub, private readonly sid: string, private readonly poll: Poll) {
    this.unsubscribe = hub.broker.subscribe(pollControlStream(sid), (message: StreamMessage) => this.receive(message.data as ControlMessage))
  }

  /** Records the claimed lease; ends the request if a newer one already asked. */
  claimed(lease: number): void {
    this.lease = lease
    if (this.endUpTo >= lease) this.poll.end('superseded')
  }

  async publish(message: ControlMessage): Promise<void> {
    await this.hub.broker.publish(pollControlStream(this.sid), message, { transient: true })
  }

  /**
   * Waits until the request holding `lease` released the session, or
   * `timeoutMs` (its process may be gone). `true` when it was released.
   */
  released(lease: number, timeoutMs: number): Promise<boolean> {
    if (this.releasedUpTo >= lease) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (released: boolean): void => {
        clearTimeout(timer)
        this.waiter = undefined
        resolve(released)
      }
      const timer = setTimeout(() => done(false), timeoutMs)
      this.waiter = { lease, resolve: () => done(true) }
    })
  }

  close(): void {
    this.unsubscribe()
  }

  private receive(message: ControlMessage): void {
    if (message.type === 'released') {
      this.releasedUpTo = Math.max(this.releasedUpTo, message.lease)
      if (this.waiter !== undefined && message.lease >= this.waiter.lease) this.waiter.resolve()
      return
    }
    this.endUpTo = Math.max(this.endUpTo, message.lease)
    if (this.lease !== undefined && message.lease >= this.lease) this.poll.end('superseded')
  }
}

/** Publishes that the request holding `lease` has answered and saved the session. */
export function publishReleased(hub: Hub, sid: string, lease: number): Promise<unknown> {
  return hub.broker.publish(pollControlStream(sid), { type: 'released', lease } satisfies ControlMessage, { transient: true })
}

/**
 * This process's share of the long-polling sessions: the requests in flight,
 * the sessions it answered last (it expires them when keepalive runs out, with
 * one sweep timer while there are any), per-session ordering of requests, and
 * the metrics. Everything that must survive the process is in the store.
 */
export class LongPollSessions {
  /** Requests in flight on this process (answered by `fastify.close()`). */
  readonly polls = new Set<Poll>()
  /** Handler runs in flight, awaited on close. */
  readonly running = new Set<Promise<unknown>>()
  private readonly watched = new Map<string, { deadline: number; requests: number }>()
  private readonly chains = new Map<string, Promise<void>>()
  private sweeper: NodeJS.Timeout | undefined
  private sweeping = false
  private readonly clients
  private readonly staleRequests
  private readonly releaseTimeouts

  constructor(
    readonly hub: Hub,
    readonly options: ResolvedOptions,
    metrics: Metrics,
    private readonly log: Pick<FastifyBaseLogger, 'error'>
  ) {
    this.clients = metrics.gauge('long_poll_clients_num', 'Long-polling sessions served by this process and not expired')
    this.staleRequests = metrics.counter('long_poll_stale_requests_total', 'Polls for an unknown or expired long-polling session')
    this.releaseTimeouts = metrics.counter(
      'long_poll_release_timeouts_total',
      'Requests that took a long-polling session over without its holder releasing it (the holder\'s process was gone or stalled)'
    )
  }

  /** How long a request may hold a session: the poll interval, then the flush interval. */
  get holdMs(): number {
    return this.options.pollIntervalMs + this.options.flushIntervalMs
  }

  /** How long an expired session stays in the store: restorable for `sessionsTtl`, and answered `session_expired` meanwhile. */
  get tombstoneTtlMs(): number {
    return Math.max(this.hub.sessionsTtlMs, 60_000)
  }

  /** Store TTL of a live session: it outlives its keepalive so that it can still expire (and be restored) properly. */
  get storeTtlMs(): number {
    return this.holdMs + this.options.keepaliveTimeoutMs + this.tombstoneTtlMs
  }

  /** How long a new request waits for the one in flight to release the session (its process may have died). */
  get releaseWaitMs(): number {
    return Math.min(this.options.pollIntervalMs, 1000)
  }

  /** Whether keepalive ran out for a stored session. A request in flight keeps it alive while it may still be running. */
  due(state: SessionState, now = Date.now()): boolean {
    const lp = readState(state)
    if (lp.expired === true) return false
    return state.lease === lp.settled ? lp.expiresAt <= now : lp.expiresAt + this.holdMs <= now
  }

  countStale(): void {
    this.staleRequests.inc()
  }

  countReleaseTimeout(): void {
    this.releaseTimeouts.inc()
  }

  /** Whether a request holds the session: it claimed it and has not finished (answered and saved) yet. */
  held(state: SessionState): boolean {
    return state.lease !== readState(state).settled
  }

  /**
   * Runs the setup of requests for one session one at a time on this process,
   * so that a request's commands are saved before a newer request reads the
   * session. Returns the function that lets the next one in.
   */
  async lock(sid: string): Promise<() => void> {
    const previous = this.chains.get(sid) ?? Promise.resolve()
    let unlock!: () => void
    const mine = new Promise<void>((resolve) => { unlock = resolve })
    const chained = previous.then(() => mine)
    this.chains.set(sid, chained)
    await previous
    return () => {
      unlock()
      if (this.chains.get(sid) === chained) this.chains.delete(sid)
    }
  }

  /** A request for `sid` began on this process. */
  begin(sid: string): void {
    const entry = this.watched.get(sid)
    if (entry === undefined) this.watched.set(sid, { deadline: Infinity, requests: 1 })
    else entry.requests++
    this.clients.set(this.watched.size)
  }

  /** A request for `sid` ended; this process expires the session at `deadline` unless another request comes. */
  end(sid: string, deadline: number): void {
    const entry = this.watched.get(sid)!
    entry.requests--
    entry.deadline = deadline
    this.sweeper ??= setInterval(() => void this.sweep(), Math.max(10, Math.min(this.options.keepaliveTimeoutMs / 2, 1000)))
    this.sweeper.unref()
  }

  /**
   * Expires a session whose keepalive ran out: claims it at the lease it was
   * read at and marks it expired (so a request or another process that claimed
   * it meanwhile wins, and `unsubscribed` runs once), then closes it,
   * which runs the channels' `unsubscribed` callbacks and releases its streams.
   * It stays in the store for `sessionsTtl` so that it can be restored by sid.
   */
  async expire(state: SessionState): Promise<void> {
    // Claimed at the lease it was read at: of two processes expiring it at once (or a request claiming it), one wins.
    const claimed = await this.hub.store.claim(state.sid, this.tombstoneTtlMs, state.lease)
    if (claimed === undefined) return
    const lp = readState(state)
    const marked: SessionState = { ...claimed, transport: { ...claimed.transport, ...lp, settled: claimed.lease, expired: true } }
    if (!(await this.hub.save(marked, this.tombstoneTtlMs))) return
    await publishReleased(this.hub, state.sid, claimed.lease)
    await new Session(this.hub, claimed, 'pull').close()
  }

  /** Expires the sessions this process answered last whose keepalive ran out. */
  async sweep(): Promise<void> {
    if (this.sweeping) return
    this.sweeping = true
    const now = Date.now()
    try {
      for (const [sid, entry] of this.watched) {
        if (entry.requests > 0 || entry.deadline > now) continue
        try {
          const state = await this.hub.store.get(sid)
          const lp = state === undefined ? undefined : readState(state)
          if (state === undefined || lp === undefined || lp.expired === true || lp.expiresAt !== entry.deadline) {
            // Gone, expired elsewhere, or answered by another process since (which watches it now).
            this.forget(sid)
          } else if (this.due(state, now)) {
            await this.expire(state)
            this.forget(sid)
          }
        } catch (error) {
          this.log.error({ err: error }, '@rt/long-poll: expiring a session failed')
        }
      }
    } finally {
      this.sweeping = false
    }
  }

  /** Ends held polls (answered with what is pending) and waits for every request in flight. */
  async drain(): Promise<void> {
    for (const poll of this.polls) poll.end('closing')
    while (this.running.size > 0) await Promise.allSettled([...this.running])
  }

  close(): void {
    clearInterval(this.sweeper)
    this.sweeper = undefined
    this.watched.clear()
    this.clients.set(0)
  }

  private forget(sid: string): void {
    const entry = this.watched.get(sid)
    if (entry !== undefined && entry.requests === 0) this.watched.delete(sid)
    this.clients.set(this.watched.size)
    if (this.watched.size === 0) {
      clearInterval(this.sweeper)
      this.sweeper = undefined
    }
  }
}
