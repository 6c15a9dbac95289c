import type { SessionState, SessionStore } from '@rt/core'

/** The session-store key of the record naming the process that holds an upstream socket. */
export const holderKey = (upstream: string): string => `$rt:ac-holder:${upstream}`

/** What a holder record says (kept in the record's `identity`). */
interface HolderContent {
  /** The process holding the socket; absent once released. */
  holder?: string
  /** When the holder last renewed the record (ms since the epoch, its clock). */
  renewedAt: number
  /** The record's lease when this content was written: a newer lease means a take-over is under way. */
  at: number
  /** The upstream ended the connection for good (`disconnect`, `reconnect: false`) with this reason. */
  ended?: string
}

/** A holder record as read. */
export type HolderStatus =
  | { kind: 'held'; holder: string; lease: number }
  | { kind: 'free'; lease: number | undefined }
  | { kind: 'ended'; reason: string }

/**
 * Who holds each upstream socket, in the session store, so that of the
 * processes of a cluster exactly one holds it. The record outlives its holder
 * (it is marked free, never deleted while a session may come back), and a
 * take-over is `claim` at the lease the record was read at: of two processes
 * taking over from the same state, one wins. The winner writes its name at
 * the new lease and renews it with `save` (a compare-and-set on that lease):
 * a holder whose renewal is refused has been taken over and lets go.
 */
export class HolderRecords {
  /** Leases seen with a take-over under way (claimed, name not written yet), and since when: a taker that died there is waited out once. */
  private readonly pending = new Map<string, { lease: number; since: number }>()

  constructor(
    private readonly store: SessionStore,
    private readonly processId: string,
    /** How long a record lasts without renewal before another process may take over. */
    private readonly holderTtl: number,
    /** How long a record is kept in the store after its last write (longer than any session it serves can wait to come back). */
    private readonly recordTtl: number
  ) {}

  async read(upstream: string): Promise<HolderStatus> {
    const record = await this.store.get(holderKey(upstream))
    if (record === undefined) return { kind: 'free', lease: undefined }
    const content = record.identity as unknown as HolderContent
    if (typeof content.ended === 'string') return { kind: 'ended', reason: content.ended }
    const now = Date.now()
    if (record.lease !== content.at) {
      // Claimed and not written yet: a take-over is under way. Its taker counts as the holder for one holderTtl.
      const seen = this.pending.get(upstream)
      if (seen === undefined || seen.lease !== record.lease) this.pending.set(upstream, { lease: record.lease, since: now })
      else if (now - seen.since >= this.holderTtl) return { kind: 'free', lease: record.lease }
      return { kind: 'held', holder: '', lease: record.lease }
    }
    this.pending.delete(upstream)
    if (content.holder !== undefined && content.renewedAt + this.holderTtl > now) return { kind: 'held', holder: content.holder, lease: record.lease }
    return { kind: 'free', lease: record.lease }
  }

  /** Records a new upstream (an id nobody else knows yet) as held here; its lease. */
  async create(upstream: string): Promise<number> {
    await this.store.create(this.record(upstream, { holder: this.processId, renewedAt: Date.now(), at: 0 }), this.recordTtl)
    return 0
  }

  /**
   * Takes the upstream over from the state it was read in (`lease`, from a
   * `free` status): the new lease when this process won, `undefined` when
   * another one did. A record gone from the store is written anew first.
   */
  async takeOver(upstream: string, lease: number | undefined): Promise<number | undefined> {
    if (lease === undefined) {
      // Not seen for longer than recordTtl: nothing to compare with but a fresh record (two processes doing this at
      // the very same moment can still both win; recordTtl makes it as unlikely as a session coming back that late).
      await this.store.create(this.record(upstream, { renewedAt: 0, at: 0 }), this.recordTtl)
      lease = 0
    }
    const claimed = await this.store.claim(holderKey(upstream), this.recordTtl, lease)
    if (claimed === undefined) return undefined
    this.pending.delete(upstream)
    return (await this.write(claimed.lease, upstream, { holder: this.processId, renewedAt: Date.now(), at: claimed.lease })) ? claimed.lease : undefined
  }

  /** Renews this process's hold; `false` when another process took the upstream over (or the record is gone). */
  renew(upstream: string, lease: number): Promise<boolean> {
    return this.write(lease, upstream, { holder: this.processId, renewedAt: Date.now(), at: lease })
  }

  /** Gives the hold up: the next process to need the socket takes over at once. */
  async release(upstream: string, lease: number): Promise<void> {
    await this.write(lease, upstream, { renewedAt: 0, at: lease })
  }

  /** Marks the upstream ended with `reason`: sessions it served end with it wherever they are taken up next. */
  async end(upstream: string, lease: number, reason: string): Promise<void> {
    await this.write(lease, upstream, { renewedAt: 0, at: lease, ended: reason })
  }

  /** Forgets the cached observations of an upstream this process no longer deals with. */
  forget(upstream: string): void {
    this.pending.delete(upstream)
  }

  private write(lease: number, upstream: string, content: HolderContent): Promise<boolean> {
    return this.store.save({ ...this.record(upstream, content), lease }, this.recordTtl)
  }

  private record(upstream: string, content: HolderContent): SessionState {
    return {
      sid: holderKey(upstream),
      identity: { ...content },
      subscriptions: {},
      positions: {},
      outbox: [],
      transport: {},
      lease: 0,
      createdAt: Date.now()
    }
  }
}
