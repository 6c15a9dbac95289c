import { Histogram } from './histogram.js'

/** The payload every benchmark message carries: per-stream sequence number (1-based) and publish time. */
export interface Payload {
  /** Sequence number within its stream, 1, 2, 3, … */
  s: number
  /** Publish time, ms on the shared clock ({@link now}). */
  t: number
}

/** Milliseconds on a clock that processes on one machine share (sub-millisecond resolution). */
export function now (): number {
  return performance.timeOrigin + performance.now()
}

/**
 * What one client received from its stream: contiguous prefix plus the
 * out-of-order sequence numbers above it, so losses and duplicates are exact
 * without keeping every number.
 */
export class ClientTracker {
  /** Every sequence number 1..contiguous was received. */
  contiguous = 0
  private readonly ahead = new Set<number>()
  received = 0
  duplicates = 0
  outOfOrder = 0
  /** When `contiguous` first reached a message published at or after {@link catchUpAfter}. */
  caughtUpAt: number | undefined
  catchUpAfter = Number.POSITIVE_INFINITY

  constructor (readonly stream: number) {}

  /** Counts one delivered message; returns false when it was a duplicate. */
  receive (payload: Payload, at: number, latency: Histogram): boolean {
    const seq = payload.s
    if (seq <= this.contiguous || this.ahead.has(seq)) {
      this.duplicates++
      return false
    }
    this.received++
    latency.record(at - payload.t)
    if (seq === this.contiguous + 1) {
      this.contiguous = seq
      while (this.ahead.delete(this.contiguous + 1)) this.contiguous++
    } else {
      this.outOfOrder++
      this.ahead.add(seq)
    }
    if (this.caughtUpAt === undefined && seq === this.contiguous && payload.t >= this.catchUpAfter) this.caughtUpAt = at
    return true
  }

  /** Messages of 1..expected this client never got. */
  lost (expected: number): number {
    let have = Math.min(this.contiguous, expected)
    for (const seq of this.ahead) if (seq <= expected) have++
    return expected - have
  }

  /** True once every message 1..expected arrived. */
  complete (expected: number): boolean {
    return this.contiguous >= expected
  }
}

/** Totals over a set of clients, given how many messages each stream got. */
export interface Accounting {
  clients: number
  /** Unique messages delivered (sum over clients). */
  delivered: number
  /** Deliveries the publisher's counts promised: sum over clients of their stream's count. */
  expected: number
  lost: number
  duplicates: number
  outOfOrder: number
  clientsWithLoss: number
  clientsWithDuplicates: number
}

export function account (trackers: Iterable<ClientTracker>, published: ReadonlyArray<number>): Accounting {
  const total: Accounting = { clients: 0, delivered: 0, expected: 0, lost: 0, duplicates: 0, outOfOrder: 0, clientsWithLoss: 0, clientsWithDuplicates: 0 }
  for (const tracker of trackers) {
    const expected = published[tracker.stream] ?? 0
    const lost = tracker.lost(expected)
    total.clients++
    total.delivered += tracker.received
    total.expected += expected
    total.lost += lost
    total.duplicates += tracker.duplicates
    total.outOfOrder += tracker.outOfOrder
    if (lost > 0) total.clientsWithLoss++
    if (tracker.duplicates > 0) total.clientsWithDuplicates++
  }
  return total
}
