/**
 * The bounded queue a session keeps while no EventSource listens: when it is
 * full the oldest message is dropped and counted, and the count is reported
 * (then reset) by the next long-poll answer.
 */
export class PollQueue<T> {
  private readonly items: T[] = []
  private droppedCount = 0

  constructor(private capacity: number) {}

  get length(): number {
    return this.items.length
  }

  get size(): number {
    return this.capacity
  }

  /** Appends; returns how many of the oldest messages were dropped to make room. */
  push(item: T): number {
    this.items.push(item)
    return this.trim()
  }

  /** Changes the capacity; shrinking drops (and counts) the oldest messages, and returns how many. */
  resize(capacity: number): number {
    this.capacity = capacity
    return this.trim()
  }

  /** Removes and returns up to `limit` of the oldest messages. */
  take(limit = Infinity): T[] {
    return this.items.splice(0, limit)
  }

  /** The dropped count since the last call, which resets it. */
  takeDropped(): number {
    const dropped = this.droppedCount
    this.droppedCount = 0
    return dropped
  }

  private trim(): number {
    const excess = this.items.length - this.capacity
    if (excess <= 0) return 0
    this.items.splice(0, excess)
    this.droppedCount += excess
    return excess
  }
}
