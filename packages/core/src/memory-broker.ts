import { randomTokens } from './random-tokens.js'
import { MemoryPresenceStore } from './presence-store.js'
import {
  BrokerUnavailableError,
  type Broker,
  type HistoryQuery,
  type HistoryResult,
  type PublishOptions,
  type StreamListener,
  type StreamMessage,
  type StreamPosition
} from './broker.js'
import { encodeMessageData } from './limits.js'
import { RetentionRules, type RetentionPolicy, type StreamSelector } from './retention.js'

export interface RetentionOptions {
  /** Messages kept per stream. Default 100 (AnyCable's `history_limit`). */
  historyLimit?: number
  /** Seconds a message is kept. Default 300 (AnyCable's `history_ttl`). `Infinity` keeps messages until pushed out by the limit. */
  historyTtl?: number
}

/** Hooks called synchronously as a broker's retained state changes (a journal is one). */
export interface BrokerObserver {
  /** Called with every message accepted into history (the journal hooks in here). */
  onAppend?: (message: StreamMessage) => void
  /** Called when a stream's whole state is dropped (the journal compacts on it). */
  onDrop?: (stream: string) => void
  /** Called with the offsets `remove()` actually deleted (delete-after-read). */
  onRemove?: (stream: string, epoch: string, offsets: readonly number[]) => void
}

export interface MemoryBrokerOptions extends RetentionOptions, BrokerObserver {
  /**
   * How often expired history is swept, in ms. One timer for the whole broker,
   * never one per message. Default: a tenth of `historyTtl`, between 1 s and 60 s.
   */
  sweepInterval?: number
  /** Clock, for tests. */
  now?: () => number
}

/** State restored into a broker, e.g. from a journal. */
export interface RestoredStream {
  stream: string
  epoch: string
  lastOffset: number
  messages: StreamMessage[]
}

interface StreamState {
  epoch: string
  lastOffset: number
  /** Retained messages, oldest first; offsets are increasing but may have gaps (removals). */
  messages: StreamMessage[]
  /** Highest offset dropped by retention (count or age): positions below it cannot be resumed. */
  evictedThrough: number
  listeners: Set<StreamListener>
}

/**
 * A short random epoch, like AnyCable's `nanoid(4)` but with more entropy so
 * restarts never collide. A stream nobody reads is dropped and re-created with
 * a new epoch, which happens on every long-poll connect and every Redis publish.
 */
export const newEpoch: () => string = randomTokens(6)

/**
 * The in-process broker. Each stream gets its own epoch when it is created, so a
 * stream that was dropped (nobody listening, history expired) and is written
 * again starts a new, distinguishable history.
 */
export class MemoryBroker implements Broker {
  /** The default retention (streams no `setRetention` policy selects). */
  readonly historyLimit: number
  readonly historyTtlMs: number
  private readonly retention: RetentionRules
  private readonly streams = new Map<string, StreamState>()
  private readonly now: () => number
  private readonly observers = new Set<BrokerObserver>()
  private readonly sweeper: NodeJS.Timeout | undefined
  private closed = false
  /** This process's presence sets. */
  readonly presence: MemoryPresenceStore

  constructor(options: MemoryBrokerOptions = {}) {
    this.presence = new MemoryPresenceStore(options.now)
    const historyLimit = options.historyLimit ?? 100
    const historyTtl = options.historyTtl ?? 300
    if (!Number.isInteger(historyLimit) || historyLimit < 0) {
      throw new TypeError('@rt/core: historyLimit must be a non-negative integer')
    }
    if (!(historyTtl > 0)) throw new TypeError('@rt/core: historyTtl must be a positive number of seconds')
    this.historyLimit = historyLimit
    this.historyTtlMs = historyTtl * 1000
    this.retention = new RetentionRules({ historyLimit, historyTtl })
    this.now = options.now ?? Date.now
    const { onAppend, onDrop, onRemove } = options
    if (onAppend !== undefined || onDrop !== undefined || onRemove !== undefined) this.observers.add({ onAppend, onDrop, onRemove })
    const sweepInterval = options.sweepInterval ??
      (Number.isFinite(this.historyTtlMs) ? Math.min(60_000, Math.max(1000, this.historyTtlMs / 10)) : 60_000)
    this.sweeper = setInterval(() => this.sweep(), sweepInterval)
    this.sweeper.unref()
  }

  /** Number of streams holding state (history or listeners). */
  get streamCount(): number {
    return this.streams.size
  }

  /** Adds hooks to a running broker (e.g. a journal opened after the broker). Returns the function that removes them. */
  observe(observer: BrokerObserver): () => void {
    const entry = { ...observer }
    this.observers.add(entry)
    return () => {
      this.observers.delete(entry)
    }
  }

  /** The retained state of every stream (what a journal compacts to); messages oldest first. */
  snapshot(): RestoredStream[] {
    return [...this.streams].map(([stream, state]) => ({ stream, epoch: state.epoch, lastOffset: state.lastOffset, messages: [...state.messages] }))
  }

  setRetention(applies: StreamSelector, policy: RetentionPolicy): () => void {
    return this.retention.add(applies, policy, '@rt/core')
  }

  /** Loads streams saved earlier (journal reload). Existing state of those streams is replaced. */
  restore(streams: Iterable<RestoredStream>): void {
    for (const saved of streams) {
      const state = this.state(saved.stream)
      const { historyLimit } = this.retention.for(saved.stream)
      const kept = historyLimit === 0 ? [] : saved.messages.slice(-historyLimit)
      state.epoch = saved.epoch
      state.lastOffset = saved.lastOffset
      state.messages = kept
      state.evictedThrough = (kept[0]?.offset ?? saved.lastOffset + 1) - 1
    }
    this.sweep()
  }

  async publish(stream: string, data: unknown, options: PublishOptions = {}): Promise<StreamMessage> {
    this.assertOpen()
    const meta = options.transient ? { ...options.meta, transient: true } : options.meta
    const transient = meta?.transient === true
    // Encoded before an offset is taken: what cannot be written out is refused, not stored.
    const json = options.json ?? encodeMessageData(data)
    // A transient message to a stream nobody reads goes nowhere: no stream is created (and dropped) for it.
    // Long polling's release notices are such messages, one per answered request.
    if (transient && !this.streams.has(stream)) {
      const message: StreamMessage = { stream, offset: 0, epoch: '', timestamp: this.now(), data, json }
      if (meta !== undefined) message.meta = meta
      return message
    }
    const state = this.state(stream)
    const message: StreamMessage = {
      stream,
      offset: transient ? 0 : ++state.lastOffset,
      epoch: state.epoch,
      timestamp: this.now(),
      data,
      json
    }
    if (meta !== undefined) message.meta = meta
    const { historyLimit } = this.retention.for(stream)
    if (!transient && historyLimit > 0) {
      state.messages.push(message)
      // Usually one out, by shift(): V8 moves the array's start in place, where splice(0, 1) copies the whole
      // history (at bench s5's 10,000 messages that cut in-process publishes from ~1M/s to 40k/s). More than one
      // when a policy with a smaller limit started to apply.
      const excess = state.messages.length - historyLimit
      if (excess === 1) state.evictedThrough = state.messages.shift()!.offset
      else if (excess > 1) state.evictedThrough = state.messages.splice(0, excess).at(-1)!.offset
      for (const observer of this.observers) observer.onAppend?.(message)
    } else if (!transient) {
      state.evictedThrough = message.offset
    }
    for (const listener of state.listeners) listener(message)
    if (state.listeners.size === 0 && state.messages.length === 0) this.drop(stream)
    return message
  }

  subscribe(stream: string, listener: StreamListener): () => void {
    this.assertOpen()
    const state = this.state(stream)
    // Wrap so the same function may be subscribed twice and removed independently.
    const entry: StreamListener = (message) => listener(message)
    state.listeners.add(entry)
    return () => {
      state.listeners.delete(entry)
      if (state.listeners.size === 0 && state.messages.length === 0 && this.streams.get(stream) === state) {
        this.drop(stream)
      }
    }
  }

  async history(stream: string, query: HistoryQuery): Promise<HistoryResult> {
    this.assertOpen()
    this.expire(stream)
    const state = this.streams.get(stream)
    if (state === undefined) {
      // Never written (or dropped): an empty history in a fresh epoch the stream will get when written.
      return { messages: [], epoch: '', lastOffset: 0, complete: 'since' in query }
    }
    return readHistory(state, query)
  }

  async position(stream: string): Promise<StreamPosition> {
    this.assertOpen()
    return { epoch: this.state(stream).epoch, offset: this.state(stream).lastOffset }
  }

  async remove(stream: string, offsets: readonly number[]): Promise<void> {
    this.assertOpen()
    const state = this.streams.get(stream)
    if (state === undefined || offsets.length === 0) return
    const removed = new Set(offsets)
    const kept = state.messages.filter((message) => !removed.has(message.offset))
    if (kept.length === state.messages.length) return
    const deleted = state.messages.filter((message) => removed.has(message.offset)).map((message) => message.offset)
    state.messages = kept
    for (const observer of this.observers) observer.onRemove?.(stream, state.epoch, deleted)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.sweeper)
    this.streams.clear()
    await this.presence.close()
  }

  /** Drops expired history everywhere, and streams that then hold nothing. */
  sweep(): void {
    for (const stream of [...this.streams.keys()]) this.expire(stream)
  }

  private expire(stream: string): void {
    const state = this.streams.get(stream)
    if (state === undefined) return
    const oldest = this.now() - this.retention.for(stream).historyTtl * 1000
    let cut = 0
    while (cut < state.messages.length && state.messages[cut]!.timestamp < oldest) cut++
    if (cut > 0) state.evictedThrough = state.messages.splice(0, cut)[cut - 1]!.offset
    if (state.messages.length === 0 && state.listeners.size === 0) this.drop(stream)
  }

  private drop(stream: string): void {
    this.streams.delete(stream)
    for (const observer of this.observers) observer.onDrop?.(stream)
  }

  private state(stream: string): StreamState {
    let state = this.streams.get(stream)
    if (state === undefined) {
      state = { epoch: newEpoch(), lastOffset: 0, messages: [], evictedThrough: 0, listeners: new Set() }
      this.streams.set(stream, state)
    }
    return state
  }

  private assertOpen(): void {
    if (this.closed) throw new BrokerUnavailableError('@rt/core: the broker is closed')
  }
}

/** Answers a history query from a stream's retained messages (shared by every in-process view of a stream). */
export function readHistory(
  state: { epoch: string; lastOffset: number; evictedThrough: number; messages: readonly StreamMessage[] },
  query: HistoryQuery
): HistoryResult {
  const { epoch, lastOffset, evictedThrough, messages } = state
  const limit = query.limit ?? Infinity
  if ('since' in query) {
    const start = firstIndex(messages, (message) => message.timestamp >= query.since)
    return { messages: messages.slice(start, start + limit), epoch, lastOffset, complete: true }
  }
  const { offset } = query.after
  if (query.after.epoch !== epoch || offset > lastOffset) {
    return { messages: [], epoch, lastOffset, complete: false }
  }
  const start = firstIndex(messages, (message) => message.offset > offset)
  // Complete when retention dropped nothing after the position.
  return { messages: messages.slice(start, start + limit), epoch, lastOffset, complete: offset >= evictedThrough }
}

/** Binary search: index of the first element matching a monotonic predicate. */
function firstIndex<T>(items: readonly T[], matches: (item: T) => boolean): number {
  let low = 0
  let high = items.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (matches(items[mid]!)) high = mid
    else low = mid + 1
  }
  return low
}
