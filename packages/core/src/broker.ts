import type { PresenceStore } from './presence-store.js'

/**
 * The broker: every message lives in a stream and is read by position.
 *
 * A position is `(offset, epoch)`. Offsets grow by one per retained message of a
 * stream, starting at 1. The epoch names one unbroken history of that stream: a
 * position from another epoch can no longer be resolved (the history it points
 * into is gone), and readers are told so instead of being silently "caught up".
 */
import { encodeMessageData } from './limits.js'

import type { RetentionPolicy, StreamSelector } from './retention.js'

/** A point in one stream's history. */
export interface StreamPosition {
  offset: number
  epoch: string
}

/** One message of a stream, as the broker stores and delivers it. */
export interface StreamMessage {
  stream: string
  /** 1-based, +1 per retained message; 0 for transient messages (never in history). */
  offset: number
  epoch: string
  /** Milliseconds since the Unix epoch, when the broker accepted the message. */
  timestamp: number
  /** The payload: any JSON value. */
  data: unknown
  /**
   * `data` as JSON text, encoded once when the broker accepted the message:
   * readers write this text and never serialise `data` again (so whatever was
   * accepted can be sent, and a broadcast costs no `JSON.stringify` per
   * reader). Every broker sets it; it is optional so that messages built by
   * hand (tests, adapters) still type-check — read it with {@link messageJson}.
   */
  json?: string
  /** Delivery hints carried with the message (AnyCable's `meta`). */
  meta?: MessageMeta
}

/** AnyCable-compatible publication metadata. */
export interface MessageMeta {
  /** Do not deliver to the session with this sid. */
  exclude_socket?: string
  /** Deliver live only: no offset, not kept in history. */
  transient?: boolean
  /** Sets the `type` of the delivered Action Cable reply. */
  broadcast_type?: string
  /**
   * Set by `/_broadcast` when `data` was published as a string holding JSON
   * (AnyCable's format) and parsed: readers whose clients expect the string
   * (category polling's `broadcastData: 'string'`) can give it back as one.
   */
  json_string?: boolean
  /**
   * Names one transient message on every process that receives it (rt's
   * whispers and presence events carry one), so that what a pull session kept
   * between two requests is delivered once. Messages without it are named by
   * their content and timestamp.
   */
  transient_id?: string
}

export interface PublishOptions {
  /** Shorthand for `meta.transient`. */
  transient?: boolean
  meta?: MessageMeta
  /**
   * `data` as JSON text, when the caller holds it already (the broadcast
   * endpoint's `data` string as received): the broker stores it instead of
   * encoding `data` again. It must encode `data`, be nested no deeper than
   * `MAX_STORED_JSON_DEPTH` and hold no line break (JSON Lines readers).
   */
  json?: string
}

export type StreamListener = (message: StreamMessage) => void

/** What to read from a stream's history. */
export type HistoryQuery =
  | { after: StreamPosition; limit?: number }
  | { since: number; limit?: number }

export interface HistoryResult {
  /** Retained messages matching the query, oldest first. */
  messages: StreamMessage[]
  /** The stream's current epoch. */
  epoch: string
  /** The stream's last assigned offset (0 when nothing was ever published in this epoch). */
  lastOffset: number
  /**
   * `false` when the query names a position older than what is retained, a
   * position past the end, or another epoch: `messages` then holds what is
   * retained and the caller decides what to tell its client.
   */
  complete: boolean
}

/**
 * The broker interface every implementation (memory, Redis) provides.
 *
 * Responsibilities: assign offsets atomically per stream, keep history bounded by
 * count and age, deliver live messages to subscribers in offset order, and answer
 * history queries by position or by time. One contract test suite
 * (`@rt/core/test/broker-contract`) pins the behaviour for every implementation.
 */
export interface Broker {
  /** Appends a message to a stream (unless transient) and delivers it to live subscribers. */
  publish(stream: string, data: unknown, options?: PublishOptions): Promise<StreamMessage>
  /**
   * Delivers every later message of `stream` to `listener`, in offset order.
   * Returns the function that removes the listener.
   */
  subscribe(stream: string, listener: StreamListener): () => void
  /** Reads retained history by position (`after`) or by time (`since`, ms). */
  history(stream: string, query: HistoryQuery): Promise<HistoryResult>
  /** The stream's current position: its epoch and last assigned offset. */
  position(stream: string): Promise<StreamPosition>
  /**
   * Keeps `policy`'s history for the streams `applies` selects instead of the
   * broker's own retention (a plugin with rules of its own: golongpoll keeps 250
   * events per category, forever). The policy added last that selects a stream
   * wins, from the stream's next write or read on. Returns the function that
   * removes it. Optional: a broker without it keeps one retention for all streams.
   */
  setRetention?(applies: StreamSelector, policy: RetentionPolicy): () => void
  /** Removes the given offsets from a stream's retained history (delete-after-read semantics). */
  remove(stream: string, offsets: readonly number[]): Promise<void>
  /** Releases timers and connections. Subscriptions end; further calls fail. */
  close(): Promise<void>
  /**
   * The presence sets of this broker's streams, shared as far as its streams
   * are (one process for memory, every process for Redis). Without it the hub
   * keeps presence in process.
   */
  readonly presence?: PresenceStore
}

/** The JSON text of a message's data: the broker's encoding when it has one, otherwise `data` encoded now. */
export function messageJson(message: Pick<StreamMessage, 'data' | 'json'>): string {
  return message.json ?? encodeMessageData(message.data)
}

/** Thrown by a broker that cannot accept a call (closed, or its backend is unreachable). */
export class BrokerUnavailableError extends Error {
  override readonly name = 'BrokerUnavailableError'

  /**
   * Recognises the error by its name, not its prototype: a broker from another
   * copy of `@rt/core` (e.g. one nested under `@rt/redis`) throws that copy's class.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // Subclasses keep the usual prototype check.
    if (this !== BrokerUnavailableError) return Function.prototype[Symbol.hasInstance].call(this, value)
    return value instanceof Error && value.name === 'BrokerUnavailableError'
  }
}

/**
 * The message id on the wire: `offset/epoch/stream`, the order AnyCable's SSE
 * encoder uses. The stream goes last because stream names may contain `/`.
 */
export function formatMessageId(message: Pick<StreamMessage, 'offset' | 'epoch' | 'stream'>): string {
  return `${message.offset}/${message.epoch}/${message.stream}`
}

/** Parses an id written by {@link formatMessageId}; `undefined` when it is not one. */
export function parseMessageId(id: string): ({ stream: string } & StreamPosition) | undefined {
  const first = id.indexOf('/')
  if (first <= 0) return undefined
  const second = id.indexOf('/', first + 1)
  if (second < 0) return undefined
  const offsetText = id.slice(0, first)
  if (!/^\d{1,15}$/.test(offsetText)) return undefined
  const epoch = id.slice(first + 1, second)
  const stream = id.slice(second + 1)
  if (epoch === '' || stream === '') return undefined
  return { offset: Number(offsetText), epoch, stream }
}
