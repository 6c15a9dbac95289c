/**
 * A fixed-bucket latency histogram that merges across processes by adding
 * counts: 10 µs buckets below 10 ms, 100 µs below 100 ms, 1 ms below 1 s,
 * 10 ms below 10 s, one overflow bucket above.
 */
const TIERS: ReadonlyArray<{ upTo: number; step: number }> = [
  { upTo: 10, step: 0.01 },
  { upTo: 100, step: 0.1 },
  { upTo: 1000, step: 1 },
  { upTo: 10000, step: 10 }
]
const TIER_START: number[] = []
let bucketCount = 0
{
  let from = 0
  for (const tier of TIERS) {
    TIER_START.push(bucketCount)
    bucketCount += Math.round((tier.upTo - from) / tier.step)
    from = tier.upTo
  }
}
/** Buckets in one histogram, the last one being the overflow. */
export const BUCKETS = bucketCount + 1

function bucketOf(ms: number): number {
  let from = 0
  for (let i = 0; i < TIERS.length; i++) {
    const tier = TIERS[i] as { upTo: number; step: number }
    if (ms < tier.upTo) return (TIER_START[i] as number) + Math.floor((ms - from) / tier.step)
    from = tier.upTo
  }
  return BUCKETS - 1
}

/** Upper edge of every finite bucket, in ms. */
const EDGES: number[] = []
{
  let from = 0
  for (const tier of TIERS) {
    const steps = Math.round((tier.upTo - from) / tier.step)
    for (let i = 1; i <= steps; i++) EDGES.push(Math.round((from + i * tier.step) * 100) / 100)
    from = tier.upTo
  }
}

export class Histogram {
  readonly counts: Uint32Array
  total = 0
  max = 0

  constructor (counts?: ArrayLike<number>) {
    this.counts = new Uint32Array(BUCKETS)
    if (counts !== undefined) this.add(counts)
  }

  /** Records one latency in milliseconds (negative values, from clock skew, count as 0). */
  record (ms: number): void {
    const value = ms > 0 ? ms : 0
    ;(this.counts[bucketOf(value)] as number)++
    this.total++
    if (value > this.max) this.max = value
  }

  /** Adds another histogram's counts (e.g. from another load process). */
  add (counts: ArrayLike<number>, max = 0): void {
    for (let i = 0; i < BUCKETS; i++) {
      const n = counts[i] as number
      this.counts[i] = (this.counts[i] as number) + n
      this.total += n
    }
    if (max > this.max) this.max = max
  }

  /** The latency below which `p` percent of the recorded values fall (bucket upper edge), or NaN when empty. */
  percentile (p: number): number {
    if (this.total === 0) return Number.NaN
    const rank = Math.max(1, Math.ceil((p / 100) * this.total))
    let seen = 0
    for (let i = 0; i < BUCKETS - 1; i++) {
      seen += this.counts[i] as number
      if (seen >= rank) return Math.min(EDGES[i] as number, this.max)
    }
    // The overflow bucket: only the maximum is known.
    return this.max
  }

  /** Sparse form for IPC: [bucket, count] pairs. */
  toSparse (): Array<[number, number]> {
    const out: Array<[number, number]> = []
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] !== 0) out.push([i, this.counts[i] as number])
    return out
  }

  static fromSparse (pairs: ReadonlyArray<readonly [number, number]>, max: number): Histogram {
    const h = new Histogram()
    for (const [bucket, count] of pairs) {
      h.counts[bucket] = (h.counts[bucket] as number) + count
      h.total += count
    }
    h.max = max
    return h
  }
}
