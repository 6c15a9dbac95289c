import type { StoredSubscription } from '../session-store.js'

/** stream → the identifiers subscribed to it, in subscription order. Never mutated: sessions share them. */
export type StreamIndex = ReadonlyMap<string, readonly string[]>

/**
 * Stream indexes by what they are built from, so that every session whose
 * subscriptions name the same streams under the same identifiers holds one
 * index: 10k sessions of one channel and stream hold one Map and one array
 * instead of 10k Maps and 10k Sets (~370 B of heap per idle session).
 * A full cache is emptied (sessions keep the indexes they hold).
 */
export class StreamIndexes {
  private readonly cache = new Map<string, StreamIndex>()

  constructor(private readonly max: number) {}

  /** Number of indexes cached. */
  get size(): number {
    return this.cache.size
  }

  of(subscriptions: Readonly<Record<string, StoredSubscription>>): StreamIndex {
    const entries = Object.entries(subscriptions).map(([identifier, { streams }]): [string, readonly string[]] => [identifier, streams])
    const key = JSON.stringify(entries)
    let index = this.cache.get(key)
    if (index === undefined) {
      if (this.cache.size >= this.max) this.cache.clear()
      this.cache.set(key, (index = build(entries)))
    }
    return index
  }
}

function build(entries: ReadonlyArray<[string, readonly string[]]>): StreamIndex {
  const index = new Map<string, string[]>()
  for (const [identifier, streams] of entries) {
    for (const stream of streams) {
      const identifiers = index.get(stream)
      if (identifiers === undefined) index.set(stream, [identifier])
      else if (!identifiers.includes(identifier)) identifiers.push(identifier)
    }
  }
  return index
}

const shared = new StreamIndexes(1024)
const EMPTY: StreamIndex = new Map()

/**
 * The index of some subscriptions: the process's shared one (see
 * {@link StreamIndexes}) for a session that lives on (`share`), else built
 * for it alone — a pull session lasts one request, and building its index
 * costs less than the JSON key a shared lookup needs (that key was 3.3 % of a
 * long-poll connect's CPU). No subscriptions: one empty index for all.
 */
export function streamIndex(subscriptions: Readonly<Record<string, StoredSubscription>>, share = true): StreamIndex {
  const entries = Object.entries(subscriptions)
  if (entries.length === 0) return EMPTY
  return share ? shared.of(subscriptions) : build(entries.map(([identifier, { streams }]) => [identifier, streams]))
}
