import { createHash } from 'node:crypto'
import { messageJson, type Broker, type StreamMessage, type StreamPosition } from '../broker.js'
import { randomTokens } from '../random-tokens.js'
import type { KeptMessage, SessionStore } from '../session-store.js'

const SAFE_ID = /^[\w-]{1,64}$/
const ids = new WeakMap<StreamMessage, string>()

/**
 * The id of a transient message, the same on every process that received it:
 * its `meta.transient_id` when it has a usable one, otherwise a digest of what
 * every process receives alike (stream, epoch, broker timestamp, data, meta).
 */
export function transientId(message: StreamMessage): string {
  let id = ids.get(message)
  if (id === undefined) {
    const given = message.meta?.transient_id
    id = given !== undefined && SAFE_ID.test(given) ? given
      : createHash('sha256').update(`${message.stream}\n${message.epoch}\n${message.timestamp}\n${messageJson(message)}\n${JSON.stringify(message.meta ?? {})}`).digest('base64url')
    ids.set(message, id)
  }
  return id
}

/** What parked sessions and their keepers need of the hub. */
export interface ParkingHost {
  readonly broker: Broker
  readonly store: SessionStore
  /** Most transient messages kept per pull session. */
  readonly transientBacklog: number
  logError(error: unknown, message: string): void
}

/** The broker stream on which the processes' parked sessions are asked for, and answer, hand-overs: one per process. */
export const pullStream = (node: string): string => `$rt:pull:${node}`

/** A process's id in hand-overs (`SessionState.parkedOn`). */
const newNodeId: () => string = randomTokens(12)

/** How long a pull request waits for the process that parked its session to flush (it may be gone). */
const HANDOVER_WAIT_MS = 1000

/**
 * Stores one pull session's transient messages (`SessionStore.keep`), once
 * per id, batching what arrives during one store call into the next. Used
 * while a request holds the session and, handed to its parked record, between
 * two requests.
 */
export class TransientKeeper {
  /** Ids of the session's transient messages known here (kept in the store, or read from it). */
  readonly ids = new Set<string>()
  /** Called when a `keep` shows that the session is gone or that a newer request saved it. */
  onSuperseded: (() => void) | undefined
  private queue: KeptMessage[] = []
  private keeping: Promise<void> = Promise.resolve()

  /** `inStore`: whether the session is in the store yet; until it is, what comes waits here (see {@link stored}). */
  constructor(private readonly host: ParkingHost, readonly sid: string, readonly lease: number, private inStore = true) {}

  /** Queues a transient message for the store (once per id). */
  keep(message: StreamMessage, after: StreamPosition): void {
    const id = transientId(message)
    if (this.ids.has(id)) return
    this.ids.add(id)
    this.queue.push({ id, after, message })
    if (this.queue.length === 1 && this.inStore) this.keeping = this.keeping.then(() => this.flush())
  }

  /** The session, new when the keeper was made, was stored: what waited goes to the store now. */
  stored(): void {
    this.inStore = true
    if (this.queue.length > 0) this.keeping = this.keeping.then(() => this.flush())
  }

  /** Settles once everything queued so far is in the store (or failed to get there, which is logged). */
  flushed(): Promise<void> {
    return this.keeping
  }

  private async flush(): Promise<void> {
    // Never empty: a flush is chained only by the message that made the queue non-empty.
    const batch = this.queue
    this.queue = []
    try {
      const saved = await this.host.store.keep!(this.sid, batch, this.host.transientBacklog)
      // Gone, or saved by a newer request since (which had joined the streams before it saved): nothing more to keep here.
      if (saved === undefined || saved > this.lease) this.onSuperseded?.()
    } catch (error) {
      this.host.logError(error, 'keeping transient messages for a pull session failed')
    }
  }
}

/** What a pull session leaves behind when it parks. */
export interface ParkRequest {
  sid: string
  /** Its keeper, which goes on storing its transient messages. */
  keeper: TransientKeeper
  /** The streams it was reading. */
  streams: readonly string[]
  /** Its positions on them when its request was answered. */
  positions: Readonly<Record<string, StreamPosition>>
  /** When it stops at the latest (its store TTL). */
  until: number
}

/**
 * A pull session between two requests, on the process that answered the
 * last one: a few fields instead of the whole session (the next request,
 * wherever it runs, builds its session from the store).
 */
export class ParkedSession {
  /** Transient messages kept since it parked. */
  kept = 0

  constructor(
    private readonly sessions: ParkedSessions,
    readonly sid: string,
    readonly keeper: TransientKeeper,
    readonly streams: readonly string[],
    private readonly positions: Readonly<Record<string, StreamPosition>>,
    public until: number
  ) {}

  /** A transient message of one of its streams; `last` is the stream's last retained message seen since parking began. */
  receive(message: StreamMessage, last: StreamPosition | undefined): void {
    if (message.meta?.exclude_socket === this.sid) return
    this.kept++
    this.keeper.keep(message, later(last, this.positions[message.stream]!))
  }

  /** Settles once what arrived so far is in the store, with how many messages were kept while parked. */
  async flushed(): Promise<number> {
    const kept = this.kept
    await this.keeper.flushed()
    return kept
  }

  /** Stops listening (a newer request saved the session, its TTL passed, or the hub closes). */
  stop(): void {
    this.sessions.remove(this)
  }
}

/** The later of the last retained position seen since parking and the session's own (a cut answer leaves it behind). */
function later(last: StreamPosition | undefined, own: StreamPosition): StreamPosition {
  return last === undefined || (last.epoch === own.epoch && last.offset <= own.offset) ? own : last
}

/** A stream listened to for parked sessions (its listener keeps the stream's last retained position since it began). */
interface ParkedStream {
  members: Set<ParkedSession>
  unsubscribe: () => void
}

/** What a process answers on its pull stream. */
type HandOver =
  | { type: 'taken'; sid: string; lease: number; by: string }
  | { type: 'flushed'; sid: string; for: number; kept: number }

/**
 * The pull sessions this process answered last and that keep the transient
 * messages of their streams between two requests. One broker subscription per
 * stream for all of them (retained messages only move the stream's last
 * position: a parked session needs nothing else of them), one sweep timer
 * while there are any, at most one per sid, and one broker stream per process
 * on which other processes ask for a hand-over.
 */
export class ParkedSessions {
  /** This process's id in `SessionState.parkedOn`. */
  readonly node = newNodeId()
  private readonly bySid = new Map<string, ParkedSession>()
  private readonly byStream = new Map<string, ParkedStream>()
  /** Hand-overs this process asked for: `${sid} ${lease}` → its answer. */
  private readonly waiting = new Map<string, (kept: number) => void>()
  private timer: NodeJS.Timeout | undefined
  private stopListening: (() => void) | undefined

  constructor(private readonly host: ParkingHost) {}

  /** Number of parked sessions. */
  get size(): number {
    return this.bySid.size
  }

  /** Number of streams listened to for parked sessions. */
  get streamCount(): number {
    return this.byStream.size
  }

  /**
   * Parks a session: listens to its streams (before the caller leaves them, so
   * the broker never stops listening meanwhile). `undefined` when the broker
   * refused (logged): the session is then not parked.
   */
  park(request: ParkRequest): ParkedSession | undefined {
    const parked = new ParkedSession(this, request.sid, request.keeper, request.streams, request.positions, request.until)
    const joined: string[] = []
    try {
      this.listen()
      for (const stream of parked.streams) {
        this.join(stream, parked)
        joined.push(stream)
      }
    } catch (error) {
      for (const stream of joined) this.leave(stream, parked)
      this.host.logError(error, 'listening between two requests failed')
      return undefined
    }
    this.bySid.get(parked.sid)?.stop()
    this.bySid.set(parked.sid, parked)
    parked.keeper.onSuperseded = () => parked.stop()
    this.timer ??= setInterval(() => this.sweep(), 1000)
    this.timer.unref()
    return parked
  }

  /** The session parked here for `sid`, if any. */
  get(sid: string): ParkedSession | undefined {
    return this.bySid.get(sid)
  }

  /** A newer request holds `sid` on this process now: the session parked for it stops. */
  supersede(sid: string): void {
    this.bySid.get(sid)?.stop()
  }

  /** Stops a parked session (see {@link ParkedSession.stop}); a stopped one is left alone. */
  remove(parked: ParkedSession): void {
    if (this.bySid.get(parked.sid) !== parked) return
    this.bySid.delete(parked.sid)
    parked.keeper.onSuperseded = undefined
    for (const stream of parked.streams) this.leave(stream, parked)
    if (this.bySid.size === 0) this.stopSweeping()
  }

  sweep(now = Date.now()): void {
    // A Map may lose the entry being visited: no copy of every parked session each second.
    for (const parked of this.bySid.values()) if (parked.until <= now) parked.stop()
  }

  /**
   * Asks the process that parked `sid` (`node`, from `SessionState.parkedOn`)
   * to flush what it kept to the store, and waits for its answer, at most
   * {@link HANDOVER_WAIT_MS} (it may be gone): how many messages it kept while
   * parked, 1 when that is not known (the store must be read again).
   */
  async handOver(sid: string, lease: number, node: string | undefined): Promise<number> {
    const local = this.bySid.get(sid)
    if (local !== undefined) return local.flushed()
    // Parked here before but stopped since (its keeps are in the store or on their way), or by a process that
    // names no node (an older version, listening elsewhere): nobody to ask.
    if (node === undefined || node === this.node) return 1
    const key = `${sid} ${lease}`
    let timer: NodeJS.Timeout | undefined
    try {
      const answered = new Promise<number>((resolve) => {
        this.waiting.set(key, resolve)
        timer = setTimeout(() => resolve(1), HANDOVER_WAIT_MS)
      })
      this.listen()
      // The publish waits until this process listens to its own stream (so the answer cannot be missed).
      await this.host.broker.publish(pullStream(node), { type: 'taken', sid, lease, by: this.node } satisfies HandOver, { transient: true })
      return await answered
    } finally {
      clearTimeout(timer)
      this.waiting.delete(key)
    }
  }

  close(): void {
    for (const parked of [...this.bySid.values()]) parked.stop()
    this.stopSweeping()
    this.stopListening?.()
    this.stopListening = undefined
    for (const resolve of this.waiting.values()) resolve(1)
  }

  /** Listens to this process's pull stream, from the first hand-over on (a process that never parks costs nothing). */
  private listen(): void {
    this.stopListening ??= this.host.broker.subscribe(pullStream(this.node), (message) => this.control(message.data as HandOver))
  }

  private control(message: HandOver): void {
    if (message.type === 'flushed') {
      this.waiting.get(`${message.sid} ${message.for}`)?.(typeof message.kept === 'number' ? message.kept : 1)
      return
    }
    // A newer request took the session over: once what arrived before is in the store, say so. Listening goes on
    // until a `keep` shows the newer request saved the session (it receives the streams itself by then).
    const parked = this.bySid.get(message.sid)
    if (parked === undefined || message.lease <= parked.keeper.lease) return
    const answer = { type: 'flushed', sid: message.sid, for: message.lease, kept: 0 } satisfies HandOver
    void parked.flushed().then((kept) => this.host.broker.publish(pullStream(message.by), { ...answer, kept }, { transient: true }))
      .catch((error: unknown) => this.host.logError(error, 'handing kept transient messages over failed'))
  }

  private join(stream: string, parked: ParkedSession): void {
    let entry = this.byStream.get(stream)
    if (entry === undefined) {
      const members = new Set<ParkedSession>()
      let last: StreamPosition | undefined
      const unsubscribe = this.host.broker.subscribe(stream, (message) => {
        if (message.offset > 0) last = { offset: message.offset, epoch: message.epoch }
        else for (const member of members) member.receive(message, last)
      })
      this.byStream.set(stream, (entry = { members, unsubscribe }))
    }
    entry.members.add(parked)
  }

  private leave(stream: string, parked: ParkedSession): void {
    const entry = this.byStream.get(stream)!
    entry.members.delete(parked)
    if (entry.members.size > 0) return
    entry.unsubscribe()
    this.byStream.delete(stream)
  }

  private stopSweeping(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }
}
