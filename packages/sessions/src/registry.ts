import type { FastifyRequest } from 'fastify'
import type { Hub, Identity, Metrics } from '@rt/core'
import { ClientSession } from './client-session.js'
import type { ResolvedOptions } from './options.js'
import { Timers } from './timers.js'

/** Why a request gets no session. */
export type OpenFailure = { status: 401 | 403 | 503; message: string }

/** Stable JSON of an identity (keys sorted at every depth), to compare the identities of two requests. */
export function identityKey(identity: Identity): string {
  return JSON.stringify(identity, (_key, value: unknown) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value
    const sorted: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) sorted[key] = (value as Record<string, unknown>)[key]
    return sorted
  })
}

/**
 * The sessions of this process by client-chosen id. A session is bound to the
 * identity that created it: every request authenticates (core's `authenticate`
 * hook) and must come from that same identity.
 */
export class SessionRegistry {
  readonly timers = new Timers()
  private readonly sessions = new Map<string, ClientSession>()
  /** Sessions being created (their hub session is authenticating): a second request for the id waits for it. */
  private readonly creating = new Map<string, Promise<ClientSession | undefined>>()
  private closed = false

  constructor(
    private readonly hub: Hub,
    private readonly options: ResolvedOptions,
    private readonly metrics: Metrics
  ) {}

  /** Sessions held now. */
  get size(): number {
    return this.sessions.size
  }

  /** The session of `id`, if this process holds it. */
  get(id: string): ClientSession | undefined {
    return this.sessions.get(id)
  }

  /** The session of `id` for this request's identity, created when there is none. */
  async open(id: string, request: FastifyRequest): Promise<ClientSession | OpenFailure> {
    for (;;) {
      if (this.closed) return { status: 503, message: 'the server is shutting down' }
      await this.creating.get(id)
      const existing = this.sessions.get(id)
      if (existing === undefined) break
      const identity = await this.hub.authenticate(request)
      if (identity === undefined) return { status: 401, message: 'unauthorized' }
      // Expired while this request authenticated: start again (a new session for the id).
      if (existing.isClosed) continue
      if (identityKey(identity) !== existing.identityKey) return { status: 403, message: 'this session belongs to another identity' }
      return existing
    }
    if (this.sessions.size + this.creating.size >= this.options.maxSessions) return { status: 503, message: 'too many sessions' }
    const creation = this.create(id, request)
    this.creating.set(id, creation)
    let session: ClientSession | undefined
    try {
      session = await creation
    } finally {
      this.creating.delete(id)
    }
    if (session === undefined) return { status: 401, message: 'unauthorized' }
    return session.isClosed ? { status: 503, message: 'the server is shutting down' } : session
  }

  /** Closes every session (the server shuts down) and refuses new ones. */
  async close(): Promise<void> {
    this.closed = true
    await Promise.all([...this.creating.values()])
    await Promise.all([...this.sessions.values()].map((session) => session.close()))
  }

  private async create(id: string, request: FastifyRequest): Promise<ClientSession | undefined> {
    const session = new ClientSession(id, {
      options: this.options,
      timers: this.timers,
      onClose: (closing) => this.forget(closing),
      onDropped: (count) => this.metrics.counter('rt_sessions_dropped_total', 'Messages dropped from full long-poll queues of @rt/sessions').inc(count)
    })
    // The hub authenticates (core's `authenticate` hook) and opens the background session.
    const result = await this.hub.connect(request, session, { mode: 'live', resumable: false })
    if ('rejected' in result) return undefined
    session.bind(result.session, identityKey(result.session.state.identity))
    this.sessions.set(id, session)
    this.metrics.gauge('rt_sessions_active', 'Sessions held by @rt/sessions on this process').inc()
    if (this.closed) await session.close()
    return session
  }

  /** A session closes once, and only after it was added: it is the one held for its id. */
  private forget(session: ClientSession): void {
    this.sessions.delete(session.id)
    this.metrics.gauge('rt_sessions_active', 'Sessions held by @rt/sessions on this process').dec()
  }
}
