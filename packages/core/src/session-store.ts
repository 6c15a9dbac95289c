import type { StreamMessage, StreamPosition } from './broker.js'
import { copyJson } from './json-copy.js'

/** One channel subscription of a session, as it is stored. */
export interface StoredSubscription {
  channel: string
  /** The identifier's parameters other than `channel`. */
  params: Record<string, unknown>
  /** Streams the channel's handlers asked for (`ctx.streamFrom`). */
  streams: string[]
  /** The stream `whisper` commands go to; absent when the subscription may not whisper. */
  whisper?: string
  /** The stream whose presence set the subscription may join; absent when presence is off for it. */
  presence?: string
  /** What the session joined that presence set as (restored sessions join again as it). */
  member?: { id: string; info?: unknown }
}

/**
 * Everything needed to continue a session in another request or on another
 * process: who it is, what it is subscribed to, and how far it has read.
 * Must stay JSON-serialisable (the Redis store writes it as JSON).
 */
export interface SessionState {
  sid: string
  /** What `authenticate` returned (`{}` when no hook is configured). */
  identity: Record<string, unknown>
  /** By identifier (compared byte for byte). */
  subscriptions: Record<string, StoredSubscription>
  /** Read position per stream: the last message delivered to (or, for pull sessions, confirmed by) the client. */
  positions: Record<string, StreamPosition>
  /** Non-stream messages (confirmations, transmissions) not yet confirmed delivered, for pull transports. */
  outbox: unknown[]
  /**
   * Set when the session was restored by its sid: the identifiers whose streams
   * wait — live messages held, positions kept — until the client's `history` (or
   * a new `subscribe`) for them has been answered, so the backlog it asks for
   * goes out before anything newer. `until` (ms since the epoch) bounds the wait
   * for a client that sends neither; then the streams continue from their positions.
   */
  restoring?: { identifiers: string[]; until: number }
  /**
   * Free-form state of the transport that owns the session (e.g. long
   * polling's keepalive bookkeeping). Replaced, never written into: new
   * sessions share one frozen empty object.
   */
  transport: Record<string, unknown>
  /**
   * Incremented by every `claim`; a `save` with an older lease is refused, so of
   * two concurrent requests for one session the newer one wins everywhere.
   */
  lease: number
  /** ms since the Unix epoch. */
  createdAt: number
  /** State of the hub's channel source for this session (e.g. its upstream connection), copied on restore. */
  sourceState?: Record<string, unknown>
  /**
   * Transient messages kept for this pull session by {@link SessionStore.keep},
   * oldest first, as `get` and `claim` read them. Never written by `save`: the
   * store holds them apart from the rest of the state.
   */
  kept?: KeptMessage[]
  /**
   * Pull sessions: the lease of the request whose process listens to the
   * session's streams between two requests (it parked the session when it
   * answered); the next request asks that process to flush what it holds.
   */
  parked?: number
  /** Pull sessions: the process that parked it (`ParkedSessions.node`), asked over its pull stream. */
  parkedOn?: string
}

/**
 * A transient message (a whisper, a presence event) that reached a pull
 * session's streams while it was between two requests (or was sent in a
 * request not yet confirmed), kept until a request confirms its delivery.
 */
export interface KeptMessage {
  /** The same on every process that received the message: what `keep` deduplicates by. No line break. */
  id: string
  /** The stream's last retained message before it, as the process that kept it had seen: where it goes in catch-up. */
  after: StreamPosition
  /** The message (offset 0). */
  message: StreamMessage
}

/**
 * Where sessions live between requests: memory for one process, Redis for a
 * cluster. Every method is atomic with respect to one sid.
 */
export interface SessionStore {
  /** Reads a session without claiming it. */
  get(sid: string): Promise<SessionState | undefined>
  /** Stores a new session (lease 0), replacing any with the same sid. */
  create(state: SessionState, ttlMs: number): Promise<void>
  /**
   * Takes the session over for one request: increments its lease, refreshes its
   * TTL and returns it with the new lease; `undefined` when it does not exist.
   * With `ifLease`, atomically claims only while the current lease is still
   * `ifLease` (`undefined` otherwise): of two processes claiming the session
   * they both read at that lease, exactly one wins, so one request (or one
   * expiry) takes the session over from a given state.
   */
  claim(sid: string, ttlMs: number, ifLease?: number): Promise<SessionState | undefined>
  /** Writes the session back if `state.lease` is still the current lease; `false` when a newer claim won. */
  save(state: SessionState, ttlMs: number): Promise<boolean>
  /** Forgets a session. */
  delete(sid: string): Promise<void>
  /**
   * Appends transient messages to an existing session's kept messages (see
   * {@link SessionState.kept}) whatever its lease, skipping ids it holds or
   * retired recently; past `limit` the oldest are dropped. Does not touch the
   * TTL: kept messages expire with the session. Answers the lease of the last
   * `save` (0 after `create`), `undefined` when there is no such session.
   * Optional: without it pull sessions miss what is published between two
   * requests.
   */
  keep?(sid: string, messages: readonly KeptMessage[], limit: number): Promise<number | undefined>
  /**
   * Removes kept messages by id (their delivery was confirmed) and remembers
   * the ids (the last `2 × limit`), so that a late `keep` of one of them from
   * another process adds nothing.
   */
  retire?(sid: string, ids: readonly string[], limit: number): Promise<void>
  /** Releases timers and connections the store created. */
  close(): Promise<void>
}

/** The in-process session store: a map with lazy expiry and one sweep timer. */
interface MemoryEntry {
  /** The state as saved, without its kept messages: a private copy. */
  state: SessionState
  lease: number
  expiresAt: number
  /** Lease of the last save. */
  saved: number
  /** Kept messages as JSON, oldest first, and their ids. */
  kept: string[]
  keptIds: string[]
  /** Recently retired ids, oldest first. */
  retired: string[]
}

export class MemorySessionStore implements SessionStore {
  private readonly entries = new Map<string, MemoryEntry>()
  private readonly sweeper: NodeJS.Timeout
  private readonly now: () => number

  constructor(options: { sweepInterval?: number; now?: () => number } = {}) {
    this.now = options.now ?? Date.now
    this.sweeper = setInterval(() => this.sweep(), options.sweepInterval ?? 10_000)
    this.sweeper.unref()
  }

  /** Sessions currently held (expired ones count until swept). */
  get size(): number {
    return this.entries.size
  }

  async get(sid: string): Promise<SessionState | undefined> {
    const entry = this.live(sid)
    return entry === undefined ? undefined : read(entry)
  }

  async create(state: SessionState, ttlMs: number): Promise<void> {
    this.entries.set(state.sid, { state: stored(state), lease: 0, expiresAt: this.now() + ttlMs, saved: 0, kept: [], keptIds: [], retired: [] })
  }

  async claim(sid: string, ttlMs: number, ifLease?: number): Promise<SessionState | undefined> {
    const entry = this.live(sid)
    if (entry === undefined || (ifLease !== undefined && entry.lease !== ifLease)) return undefined
    entry.lease++
    entry.expiresAt = this.now() + ttlMs
    return read(entry)
  }

  async save(state: SessionState, ttlMs: number): Promise<boolean> {
    const entry = this.live(state.sid)
    if (entry === undefined || entry.lease !== state.lease) return false
    entry.state = stored(state)
    entry.saved = state.lease
    entry.expiresAt = this.now() + ttlMs
    return true
  }

  async keep(sid: string, messages: readonly KeptMessage[], limit: number): Promise<number | undefined> {
    const entry = this.live(sid)
    if (entry === undefined) return undefined
    for (const message of messages) {
      if (entry.keptIds.includes(message.id) || entry.retired.includes(message.id)) continue
      entry.keptIds.push(message.id)
      entry.kept.push(JSON.stringify({ ...message, message: { ...message.message, json: undefined } }))
    }
    const excess = entry.kept.length - limit
    if (excess > 0) {
      entry.kept.splice(0, excess)
      entry.keptIds.splice(0, excess)
    }
    return entry.saved
  }

  async retire(sid: string, ids: readonly string[], limit: number): Promise<void> {
    const entry = this.live(sid)
    if (entry === undefined) return
    for (const id of ids) {
      const at = entry.keptIds.indexOf(id)
      if (at >= 0) {
        entry.keptIds.splice(at, 1)
        entry.kept.splice(at, 1)
      }
      if (!entry.retired.includes(id)) entry.retired.push(id)
    }
    if (entry.retired.length > 2 * limit) entry.retired.splice(0, entry.retired.length - 2 * limit)
  }

  async delete(sid: string): Promise<void> {
    this.entries.delete(sid)
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper)
    this.entries.clear()
  }

  /** Drops expired sessions. */
  sweep(): void {
    const now = this.now()
    for (const [sid, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(sid)
  }

  private live(sid: string): MemoryEntry | undefined {
    const entry = this.entries.get(sid)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(sid)
      return undefined
    }
    return entry
  }
}

/** A copy of a state as JSON would give it back, without its kept messages (the entry holds those). */
function stored(state: SessionState): SessionState {
  const copy = jsonCopy(state)
  delete copy.kept
  return copy
}

/** {@link copyJson}, or the JSON round trip it stands for when the value is not plain JSON. */
function jsonCopy<T>(value: T): T {
  return copyJson(value) ?? JSON.parse(JSON.stringify(value)) as T
}

function read(entry: MemoryEntry): SessionState {
  const state = jsonCopy(entry.state)
  state.lease = entry.lease
  if (entry.kept.length > 0) state.kept = entry.kept.map((json) => JSON.parse(json) as KeptMessage)
  return state
}
