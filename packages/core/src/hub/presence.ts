import { randomUUID } from 'node:crypto'
import type { Broker } from '../broker.js'
import { MemoryPresenceStore, type PresenceSnapshot, type PresenceStore } from '../presence-store.js'
import type { SessionState } from '../session-store.js'
import type { PresenceRecord } from './commands.js'

/** What a presence event carries on the wire (`message` of a `{"type":"presence"}` reply). */
export interface PresenceEvent {
  type: 'join' | 'leave'
  id: string
  info?: unknown
}

/** A session as the tracker sees it: its sid and subscriptions (with their presence streams and members). */
type Present = Pick<SessionState, 'sid' | 'subscriptions'>

export interface PresenceTrackerOptions {
  broker: Broker
  /** Seconds an ended session's records stay (AnyCable's `presence_ttl`). */
  ttlMs: number
  logError(error: unknown, message: string): void
}

/**
 * The hub's side of presence: joins and leaves through the broker's presence
 * store (or an in-process one when the broker has none), `join`/`leave`
 * events published to the stream as transient `presence` broadcasts, the
 * deadlines of this process's sessions kept moving while they are held, and
 * the one expiry path: a periodic sweep whose leaves the store hands to
 * exactly one process.
 */
export class PresenceTracker {
  readonly store: PresenceStore
  private readonly broker: Broker
  private readonly ttlMs: number
  private readonly logError: PresenceTrackerOptions['logError']
  /** Sessions held by this process, whose entries it keeps alive. */
  private readonly held = new Map<string, Present>()
  /** When this process last moved each session's deadlines (pruned once older than the TTL). */
  private readonly touched = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  private lastRefresh = 0
  private sweeping: Promise<void> | undefined

  constructor(options: PresenceTrackerOptions) {
    this.broker = options.broker
    this.store = options.broker.presence ?? new MemoryPresenceStore()
    this.ttlMs = options.ttlMs
    this.logError = options.logError
  }

  /** Adds the session to the stream's set; announces `join` when the id is new there. */
  async join(stream: string, sid: string, record: PresenceRecord): Promise<void> {
    this.start()
    if (await this.store.add(stream, sid, record.id, record.info, this.ttlMs)) {
      await this.announce(stream, { type: 'join', id: record.id, info: record.info })
    }
  }

  /** Removes the session from the stream's set; announces `leave` when that was the id's last session. */
  async leave(stream: string, sid: string): Promise<void> {
    const id = await this.store.remove(stream, sid)
    if (id !== undefined) await this.announce(stream, { type: 'leave', id })
  }

  info(stream: string, records: boolean): Promise<PresenceSnapshot> {
    return this.store.info(stream, { records })
  }

  /** The session is held by this process: its entries stay while it is. */
  hold(session: Present): void {
    if (!hasMembers(session)) return
    this.start()
    this.held.set(session.sid, session)
    // A pull session is held for one request at a time, maybe never at a refresh tick: refresh on the way in.
    const last = this.touched.get(session.sid)
    if (last === undefined || Date.now() - last >= this.ttlMs / 3) void this.refresh(session)
  }

  /**
   * The session is no longer held here (between two polls, or taken
   * elsewhere): its deadlines run. Only that very session: a newer request
   * for the same sid may already hold it.
   */
  release(session: Present): void {
    if (this.held.get(session.sid) === session) this.held.delete(session.sid)
  }

  /** The session ended without leaving: its entries go one presence TTL from now. */
  async ended(session: Present): Promise<void> {
    this.held.delete(session.sid)
    this.touched.delete(session.sid)
    // Every presence stream, joined or not in the saved state (a join may be in the set but not saved).
    for (const subscription of Object.values(session.subscriptions)) {
      if (subscription.presence !== undefined) await this.store.touch(subscription.presence, session.sid, this.ttlMs)
    }
  }

  /** A restored session (new sid) takes the records of the one it restores, without a leave or a join. */
  async transfer(from: string, to: Present): Promise<void> {
    for (const [stream, record] of members(to)) {
      await this.join(stream, to.sid, record)
      await this.leave(stream, from)
    }
  }

  /** Expires what is due now (also run by the timer). */
  sweep(): Promise<void> {
    this.sweeping ??= this.runSweep().finally(() => { this.sweeping = undefined })
    return this.sweeping
  }

  close(): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.held.clear()
  }

  private start(): void {
    if (this.timer !== undefined) return
    this.lastRefresh = Date.now()
    this.timer = setInterval(() => void this.sweep(), Math.max(10, Math.min(1000, this.ttlMs / 3)))
    this.timer.unref()
  }

  private async runSweep(): Promise<void> {
    try {
      const now = Date.now()
      if (now - this.lastRefresh >= this.ttlMs / 3) {
        this.lastRefresh = now
        for (const [sid, at] of this.touched) if (now - at > this.ttlMs) this.touched.delete(sid)
        for (const session of [...this.held.values()]) await this.refresh(session)
      }
      for (const { stream, id } of await this.store.sweep()) await this.announce(stream, { type: 'leave', id })
    } catch (error) {
      this.logError(error, 'presence sweep failed')
    }
  }

  /** Moves the deadlines of the session's entries to one TTL from now. */
  private async refresh(session: Present): Promise<void> {
    this.touched.set(session.sid, Date.now())
    try {
      for (const [stream] of members(session)) await this.store.touch(stream, session.sid, this.ttlMs)
    } catch (error) {
      this.logError(error, 'presence refresh failed')
    }
  }

  private async announce(stream: string, event: PresenceEvent): Promise<void> {
    await this.broker.publish(stream, event, { meta: { transient: true, broadcast_type: 'presence', transient_id: randomUUID() } })
  }
}

/** The session's presence streams and what it joined them as. */
function members(session: Present): Array<[string, PresenceRecord]> {
  const found: Array<[string, PresenceRecord]> = []
  for (const subscription of Object.values(session.subscriptions)) {
    if (subscription.presence !== undefined && subscription.member !== undefined) found.push([subscription.presence, subscription.member])
  }
  return found
}

const hasMembers = (session: Present): boolean => members(session).length > 0
