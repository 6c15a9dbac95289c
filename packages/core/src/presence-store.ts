/**
 * Presence sets, one per stream: records keyed by a presence id (one per user,
 * whatever number of sessions they joined with), each session entry with a
 * deadline. A held session's deadline is pushed forward while it lives; once
 * it ends, its entry goes when the deadline passes (AnyCable's presence TTL),
 * so a quick reconnect does not flap leave/join. Every removal that empties a
 * record is reported exactly once, to one caller, on any process: that caller
 * announces the `leave`.
 */

/** One presence record as clients see it. */
export interface PresenceEntry {
  id: string
  info?: unknown
}

/** The answer to a `presence` command: the number of records and, unless asked otherwise, the records. */
export interface PresenceSnapshot {
  total: number
  records: PresenceEntry[]
}

/** A record emptied by expiry: the `leave` to announce on `stream`. */
export interface PresenceLeave {
  stream: string
  id: string
}

/** Thrown by `add` when a session joins a stream's presence set under a second id. */
export class PresenceIdMismatchError extends Error {
  override readonly name = 'PresenceIdMismatchError'
}

/**
 * Where presence sets live: in process (`MemoryPresenceStore`) or shared
 * (`@rt/redis`). A broker offers its store as `broker.presence`, so presence
 * is shared exactly as far as the broker's streams are.
 */
export interface PresenceStore {
  /**
   * Adds session `sid` to record `id` of `stream` (creating it with `info`,
   * or updating its info), with a deadline `ttlMs` from now. `true` when the
   * record is new: a `join` to announce. A session already present under
   * another id is refused with {@link PresenceIdMismatchError}.
   */
  add(stream: string, sid: string, id: string, info: unknown, ttlMs: number): Promise<boolean>
  /** Removes session `sid` from `stream`; the id of the record it emptied (a `leave` to announce), if any. */
  remove(stream: string, sid: string): Promise<string | undefined>
  /** Moves the deadline of session `sid`'s entry in `stream` to `ttlMs` from now (nothing when it has none). */
  touch(stream: string, sid: string, ttlMs: number): Promise<void>
  /** The stream's records. */
  info(stream: string, options: { records: boolean }): Promise<PresenceSnapshot>
  /** Removes the entries whose deadline passed; each emptied record is returned once, to one caller. */
  sweep(): Promise<PresenceLeave[]>
  /** Releases timers and connections. */
  close(): Promise<void>
}

interface MemoryRecord {
  info: unknown
  /** sid → deadline (ms). */
  sessions: Map<string, number>
}

/** The in-process presence store (the memory broker's). */
export class MemoryPresenceStore implements PresenceStore {
  /** stream → id → record. */
  private readonly streams = new Map<string, Map<string, MemoryRecord>>()
  /** sid → stream → id, to find a session's entry. */
  private readonly sessions = new Map<string, Map<string, string>>()

  constructor(private readonly now: () => number = Date.now) {}

  async add(stream: string, sid: string, id: string, info: unknown, ttlMs: number): Promise<boolean> {
    let joined = this.sessions.get(sid)
    const previous = joined?.get(stream)
    if (previous !== undefined && previous !== id) throw new PresenceIdMismatchError(`session already present as ${previous}`)
    if (joined === undefined) this.sessions.set(sid, (joined = new Map()))
    joined.set(stream, id)
    let records = this.streams.get(stream)
    if (records === undefined) this.streams.set(stream, (records = new Map()))
    const record = records.get(id)
    const deadline = this.now() + ttlMs
    if (record === undefined) {
      records.set(id, { info, sessions: new Map([[sid, deadline]]) })
      return true
    }
    record.info = info
    record.sessions.set(sid, deadline)
    return false
  }

  async remove(stream: string, sid: string): Promise<string | undefined> {
    const joined = this.sessions.get(sid)
    const id = joined?.get(stream)
    if (joined === undefined || id === undefined) return undefined
    joined.delete(stream)
    if (joined.size === 0) this.sessions.delete(sid)
    return this.drop(stream, id, sid) ? id : undefined
  }

  async touch(stream: string, sid: string, ttlMs: number): Promise<void> {
    const id = this.sessions.get(sid)?.get(stream)
    const record = id === undefined ? undefined : this.streams.get(stream)?.get(id)
    record?.sessions.set(sid, this.now() + ttlMs)
  }

  async info(stream: string, options: { records: boolean }): Promise<PresenceSnapshot> {
    const records = this.streams.get(stream)
    if (records === undefined) return { total: 0, records: [] }
    return {
      total: records.size,
      records: options.records ? [...records].map(([id, record]) => ({ id, info: record.info })) : []
    }
  }

  async sweep(): Promise<PresenceLeave[]> {
    const now = this.now()
    const leaves: PresenceLeave[] = []
    for (const [stream, records] of [...this.streams]) {
      for (const [id, record] of [...records]) {
        for (const [sid, deadline] of [...record.sessions]) {
          if (deadline > now) continue
          const joined = this.sessions.get(sid)!
          joined.delete(stream)
          if (joined.size === 0) this.sessions.delete(sid)
          if (this.drop(stream, id, sid)) leaves.push({ stream, id })
        }
      }
    }
    return leaves
  }

  async close(): Promise<void> {
    this.streams.clear()
    this.sessions.clear()
  }

  /** Removes one session from a record; `true` when that emptied the record. */
  private drop(stream: string, id: string, sid: string): boolean {
    const records = this.streams.get(stream)!
    const record = records.get(id)!
    record.sessions.delete(sid)
    if (record.sessions.size > 0) return false
    records.delete(id)
    if (records.size === 0) this.streams.delete(stream)
    return true
  }
}
