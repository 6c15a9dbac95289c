import { isInternalStream } from '@rt/core'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { BroadcastData } from './encoder.js'

/**
 * A hook run before the subscribe or publish handler (the `long_polling`
 * wrapper's "handler to run before"). Return `false` to reject the request:
 * it is answered `403 {"error": "Forbidden."}` unless the hook already replied.
 * Anything else (`true`, `undefined`) lets the request through. May be async.
 */
export type RequestHook = (request: FastifyRequest, reply: FastifyReply) => boolean | void | Promise<boolean | void>

/** File persistence of the shared in-memory broker (see `Journal` in `@rt/core`). */
export interface PersistenceOptions {
  /** Path of the JSONL journal. A golongpoll FilePersistor file is read too (and rewritten in rt's format). */
  file: string
  /**
   * `0` (default): every event is written before it is delivered, so a process
   * crash loses nothing published. A positive number of ms batches writes: a
   * crash loses at most that interval. golongpoll's `writeFlushPeriodSeconds`.
   */
  flushIntervalMs?: number
  /** `fsync(2)` after every write so events also survive a power loss. Default false. */
  fsync?: boolean
  /** Bytes appended before the journal is compacted (when also larger than the compacted file). Default 1 MiB. */
  compactAfterBytes?: number
}

/** Options of `@rt/category-poll`. golongpoll's options keep their meaning and defaults. */
export interface CategoryPollOptions {
  /**
   * Largest `timeout` a subscriber may ask for, in seconds. Default 110
   * (golongpoll's): keep it below every proxy timeout between clients and you.
   * `0` means the default, as in golongpoll.
   */
  maxLongpollTimeoutSeconds?: number
  /**
   * Events kept per category: the newest `maxEventBufferSize` published.
   * Default 250 (golongpoll's). It is the broker's retention for the
   * `categories` streams (`broker.setRetention`), whatever the broker keeps of
   * other streams; a broker without per-stream retention still shows at most
   * this many. `0` means the default.
   */
  maxEventBufferSize?: number
  /**
   * Seconds an event is kept. Default: forever (golongpoll's). Applied like
   * `maxEventBufferSize`, and checked on every read too, so an expired event
   * is never served. `0` and `Infinity` mean forever.
   */
  eventTimeToLiveSeconds?: number
  /**
   * Which streams are categories, i.e. get golongpoll's retention
   * (`maxEventBufferSize`, `eventTimeToLiveSeconds`) in the shared broker: a
   * name prefix, a RegExp, or a function. Default: every stream but rt's
   * internal `$rt:` ones — any stream can be polled as a category. Narrow it
   * when other transports' streams should keep the broker's own retention.
   */
  categories?: string | RegExp | ((stream: string) => boolean)
  /**
   * How a message published through `/_broadcast` (whose `data` is a string
   * holding JSON, parsed by `@rt/core` for Action Cable clients) reaches category
   * clients. `'string'` (default): the JSON string as published (`"{\"x\":1}"`),
   * so clients that type `data` as a string — the Go `long_polling` wrapper —
   * read every event. `'parsed'`: the parsed value (`{"x":1}`), as Action Cable
   * clients get it. Messages published otherwise are always sent as they are.
   */
  broadcastData?: BroadcastData
  /**
   * Delete an event from the category's history once a subscriber received it
   * (golongpoll's notification mode). Parked subscribers all receive an event
   * published while they wait, and it is then deleted. Default false. This
   * deletes from the shared broker, so other transports reading the stream
   * will not find it in history either.
   */
  deleteEventAfterFirstRetrieval?: boolean
  /**
   * Most events in one answer, oldest first; a client following the documented
   * loop gets the rest on its next poll at once. Default 100. golongpoll has no
   * limit and can answer its whole buffer.
   */
  maxEventsPerResponse?: number
  /** Subscribe route, under the registration's `prefix`. Default `/events`. */
  subscribePath?: string
  /** Publish route, under the registration's `prefix`. Default `/publish`. */
  publishPath?: string
  /**
   * Serve `POST publishPath`. Default false: publishing over HTTP is opt-in, and
   * then needs `publishKey` or `beforePublish` (golongpoll's handler lets anyone publish).
   */
  enablePublish?: boolean
  /** Bearer key of the publish endpoint (`Authorization: Bearer <key>`), e.g. the core broadcast key. */
  publishKey?: string | undefined
  /** Runs before every subscribe request (authentication, allowed categories…). */
  beforeSubscribe?: RequestHook
  /**
   * Runs before a publish request that did not present `publishKey` and decides
   * whether it may publish (returning anything but `false` allows it).
   */
  beforePublish?: RequestHook
  /**
   * HTTP status of subscribe errors (`{"error": …}`). Default 200, as golongpoll
   * answers them: its JS client hands `onFailure` the `error` text only on a
   * 200 (on any other status it reports just the status code). 400 suits
   * clients and proxies that look at the status only.
   */
  errorStatus?: 200 | 400
  /** Largest publish body in bytes (413 above it). Default 1 MiB. */
  bodyLimit?: number
  /** Keep the in-memory broker's history in a file across restarts. Needs `@rt/core`'s default `MemoryBroker`. */
  persistence?: PersistenceOptions
  /**
   * Milliseconds a category stays subscribed to the broker after its last held
   * request was answered. golongpoll's client polls again right after every
   * answer, so the next request finds the subscription still there instead of
   * making a new one (with `@rt/redis`: a SUBSCRIBE, a position read and an
   * UNSUBSCRIBE per request, and a publish waiting for the SUBSCRIBE). Checked
   * every `subscriptionLingerMs`, so a category lingers up to twice that. Default
   * 2000; `0` unsubscribes with the last request. At most 1024 categories
   * linger at once (categories are named by clients); past that, a category
   * unsubscribes with its last request.
   */
  subscriptionLingerMs?: number
}

export const DEFAULT_MAX_TIMEOUT_SECONDS = 110
export const DEFAULT_MAX_EVENT_BUFFER_SIZE = 250
export const DEFAULT_MAX_EVENTS_PER_RESPONSE = 100
export const DEFAULT_SUBSCRIBE_PATH = '/events'
export const DEFAULT_PUBLISH_PATH = '/publish'
/** A batch of JSON, not a file upload. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024
/** How long a category stays subscribed after its last held request was answered (`subscriptionLingerMs`). */
export const DEFAULT_SUBSCRIPTION_LINGER_MS = 2000

/** Options after defaults and validation. */
export interface ResolvedOptions {
  maxTimeoutSeconds: number
  maxEventBufferSize: number
  /** Infinity for "forever". */
  eventTtlMs: number
  deleteAfterRead: boolean
  maxEventsPerResponse: number
  categories: (stream: string) => boolean
  broadcastData: BroadcastData
  subscribePath: string
  publishPath: string
  enablePublish: boolean
  publishKey: string | undefined
  beforeSubscribe: RequestHook | undefined
  beforePublish: RequestHook | undefined
  errorStatus: 200 | 400
  bodyLimit: number
  persistence: PersistenceOptions | undefined
  subscriptionLingerMs: number
}

function fail(message: string): never {
  throw new TypeError(`@rt/category-poll: ${message}`)
}

/** A positive integer; `0` and `undefined` give the default (golongpoll's zero values). */
function count(value: unknown, name: string, fallback: number): number {
  if (value === undefined || value === 0) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) fail(`${name} must be a positive integer (0 means ${fallback})`)
  return value
}

function path(value: unknown, name: string, fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !value.startsWith('/')) fail(`${name} must be a path starting with "/"`)
  return value
}

function hook(value: unknown, name: string): RequestHook | undefined {
  if (value !== undefined && typeof value !== 'function') fail(`${name} must be a function`)
  return value as RequestHook | undefined
}

function categories(value: unknown): (stream: string) => boolean {
  if (value === undefined) return (stream) => !isInternalStream(stream)
  if (typeof value === 'string' && value !== '') return (stream) => stream.startsWith(value)
  if (value instanceof RegExp) {
    // Without the stateful flags, so one test never depends on the previous one.
    const pattern = new RegExp(value.source, value.flags.replace(/[gy]/g, ''))
    return (stream) => pattern.test(stream)
  }
  if (typeof value === 'function') return value as (stream: string) => boolean
  fail('categories must be a stream name prefix, a RegExp or a function (stream) => boolean')
}

function persistence(value: unknown): PersistenceOptions | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null) fail('persistence must be an object { file, flushIntervalMs?, fsync?, compactAfterBytes? }')
  const options = value as PersistenceOptions
  if (typeof options.file !== 'string' || options.file === '') fail('persistence.file must be a non-empty path')
  if (options.flushIntervalMs !== undefined && (!Number.isInteger(options.flushIntervalMs) || options.flushIntervalMs < 0)) {
    fail('persistence.flushIntervalMs must be a non-negative integer of ms')
  }
  if (options.fsync !== undefined && typeof options.fsync !== 'boolean') fail('persistence.fsync must be a boolean')
  if (options.compactAfterBytes !== undefined && (!Number.isInteger(options.compactAfterBytes) || options.compactAfterBytes < 1)) {
    fail('persistence.compactAfterBytes must be a positive integer')
  }
  return options
}

/** Applies defaults and checks every option; throws a `TypeError` prefixed `@rt/category-poll:`. */
export function resolveOptions(options: CategoryPollOptions): ResolvedOptions {
  const ttl = options.eventTimeToLiveSeconds
  if (ttl !== undefined && (typeof ttl !== 'number' || Number.isNaN(ttl) || ttl < 0)) {
    fail('eventTimeToLiveSeconds must be a positive number of seconds (0 or Infinity: forever)')
  }
  if (options.deleteEventAfterFirstRetrieval !== undefined && typeof options.deleteEventAfterFirstRetrieval !== 'boolean') {
    fail('deleteEventAfterFirstRetrieval must be a boolean')
  }
  if (options.enablePublish !== undefined && typeof options.enablePublish !== 'boolean') fail('enablePublish must be a boolean')
  if (options.publishKey !== undefined && (typeof options.publishKey !== 'string' || options.publishKey === '')) {
    fail('publishKey must be a non-empty string')
  }
  if (options.errorStatus !== undefined && options.errorStatus !== 200 && options.errorStatus !== 400) fail('errorStatus must be 200 or 400')
  const linger = options.subscriptionLingerMs
  if (linger !== undefined && (typeof linger !== 'number' || !Number.isInteger(linger) || linger < 0)) {
    fail('subscriptionLingerMs must be a non-negative integer of ms (0: unsubscribe with the last held request)')
  }
  if (options.broadcastData !== undefined && options.broadcastData !== 'string' && options.broadcastData !== 'parsed') {
    fail("broadcastData must be 'string' or 'parsed'")
  }
  const resolved: ResolvedOptions = {
    maxTimeoutSeconds: count(options.maxLongpollTimeoutSeconds, 'maxLongpollTimeoutSeconds', DEFAULT_MAX_TIMEOUT_SECONDS),
    maxEventBufferSize: count(options.maxEventBufferSize, 'maxEventBufferSize', DEFAULT_MAX_EVENT_BUFFER_SIZE),
    eventTtlMs: ttl === undefined || ttl === 0 ? Infinity : ttl * 1000,
    deleteAfterRead: options.deleteEventAfterFirstRetrieval === true,
    maxEventsPerResponse: count(options.maxEventsPerResponse, 'maxEventsPerResponse', DEFAULT_MAX_EVENTS_PER_RESPONSE),
    categories: categories(options.categories),
    broadcastData: options.broadcastData ?? 'string',
    subscribePath: path(options.subscribePath, 'subscribePath', DEFAULT_SUBSCRIBE_PATH),
    publishPath: path(options.publishPath, 'publishPath', DEFAULT_PUBLISH_PATH),
    enablePublish: options.enablePublish === true,
    publishKey: options.publishKey,
    beforeSubscribe: hook(options.beforeSubscribe, 'beforeSubscribe'),
    beforePublish: hook(options.beforePublish, 'beforePublish'),
    errorStatus: options.errorStatus ?? 200,
    bodyLimit: count(options.bodyLimit, 'bodyLimit', DEFAULT_BODY_LIMIT),
    persistence: persistence(options.persistence),
    subscriptionLingerMs: linger ?? DEFAULT_SUBSCRIPTION_LINGER_MS
  }
  if (resolved.enablePublish && resolved.publishKey === undefined && resolved.beforePublish === undefined) {
    fail('enablePublish needs publishKey or beforePublish: an unguarded publish endpoint lets anyone publish')
  }
  if (resolved.enablePublish && resolved.publishPath === resolved.subscribePath) fail('publishPath and subscribePath must differ')
  return resolved
}
