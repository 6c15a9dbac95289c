import { checkAllowedOrigins } from '@rt/core'

/** Options of the `@rt/sessions` Fastify plugin. Durations are in seconds. */
export interface SessionsOptions {
  /**
   * Where `/{session-id}` is served. Default `''` (the root of the context the
   * plugin is registered in; Fastify's own `prefix` works the same way).
   */
  prefix?: string
  /**
   * Let several EventSource listeners share one session (the Go original's
   * `-r` flag). Default false: a newer listener replaces the older one, which
   * gets a `replaced` event (with a very long `retry`, so that a browser does not
   * reconnect and steal the session back) before its stream ends.
   */
  multipleListeners?: boolean
  /**
   * How long a session lives with nobody listening: after each long-poll answer,
   * after each POST and once its last EventSource listener is gone. Default 30,
   * the minimum the original promises its clients between two polls.
   */
  idleTimeout?: number
  /** The `timeout` query parameter of long polling when absent. Default 25, as the original. */
  pollTimeout?: number
  /** Largest `timeout` a client may ask for. Default 60: most proxies cut a silent request after a minute. */
  maxPollTimeout?: number
  /** The queue size (`poll-queue`) of a session created without one. Default 32, as the original. */
  pollQueue?: number
  /** Largest `poll-queue` a client may ask for. Default 1024: the queue is held in memory per session. */
  maxPollQueue?: number
  /**
   * Most messages in one long-poll answer; what is left is reported in
   * `queue_length` and fetched by the next poll. Default 32 (the default queue
   * size, so that a default queue is emptied by one answer).
   */
  maxPollMessages?: number
  /** Seconds between SSE comment lines that keep proxies from closing idle streams. Default 15; 0 turns them off. */
  heartbeat?: number
  /** Largest POST body in bytes (413 above it). Default 64 KiB, AnyCable's limit for SSE POST bodies. */
  bodyLimit?: number
  /**
   * Origins allowed to use the API from a browser (AnyCable's `allowed_origins`
   * rule: `"example.com"`, `"*.example.com"`, `"localhost:3000"`, `["*"]`).
   * Default: CORS headers reflect any Origin, as the original does, but without
   * credentials, and a cross-origin request carrying cookies gets 403 — so a page
   * on another site can never act with the user's cookies. When set, matching
   * origins get credentials (cookies reach `authenticate`) and other origins get 403.
   */
  allowedOrigins?: string[]
  /** Most sessions this process holds at once; further new session ids get 503. Default 10000. */
  maxSessions?: number
  /**
   * Bytes that may wait in memory for an EventSource listener that does not
   * read; beyond them its stream is cut (a browser reconnects and joins again).
   * Default 1 MiB.
   */
  maxBufferedBytes?: number
}

/** The options with their defaults applied, durations in milliseconds. */
export interface ResolvedOptions {
  prefix: string
  multipleListeners: boolean
  idleTimeoutMs: number
  pollTimeout: number
  maxPollTimeout: number
  pollQueue: number
  maxPollQueue: number
  maxPollMessages: number
  heartbeatMs: number
  bodyLimit: number
  allowedOrigins: string[] | undefined
  maxSessions: number
  maxBufferedBytes: number
}

function fail(message: string): never {
  throw new TypeError(`@rt/sessions: ${message}`)
}

function seconds(value: unknown, name: string, fallback: number, options: { zero: boolean }): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!options.zero && value === 0)) {
    fail(`${name} must be a ${options.zero ? 'non-negative' : 'positive'} number of seconds`)
  }
  return value
}

function integer(value: unknown, name: string, fallback: number, minimum: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) fail(`${name} must be an integer >= ${minimum}`)
  return value
}

/** Checks the options at registration; every error names the option. */
export function resolveOptions(options: SessionsOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) fail('options must be an object')
  const prefix = options.prefix ?? ''
  if (typeof prefix !== 'string' || (prefix !== '' && !prefix.startsWith('/'))) fail('prefix must be "" or a path starting with "/"')
  if (options.multipleListeners !== undefined && typeof options.multipleListeners !== 'boolean') fail('multipleListeners must be a boolean')
  const idleTimeout = seconds(options.idleTimeout, 'idleTimeout', 30, { zero: false })
  const maxPollTimeout = integer(options.maxPollTimeout, 'maxPollTimeout', 60, 0)
  const pollTimeout = integer(options.pollTimeout, 'pollTimeout', Math.min(25, maxPollTimeout), 0)
  if (pollTimeout > maxPollTimeout) fail('pollTimeout must not exceed maxPollTimeout')
  const maxPollQueue = integer(options.maxPollQueue, 'maxPollQueue', 1024, 1)
  const pollQueue = integer(options.pollQueue, 'pollQueue', Math.min(32, maxPollQueue), 1)
  if (pollQueue > maxPollQueue) fail('pollQueue must not exceed maxPollQueue')
  const maxPollMessages = integer(options.maxPollMessages, 'maxPollMessages', 32, 1)
  const heartbeat = seconds(options.heartbeat, 'heartbeat', 15, { zero: true })
  const bodyLimit = integer(options.bodyLimit, 'bodyLimit', 64 * 1024, 1)
  const maxSessions = integer(options.maxSessions, 'maxSessions', 10_000, 1)
  const maxBufferedBytes = integer(options.maxBufferedBytes, 'maxBufferedBytes', 1024 * 1024, 1)
  return {
    prefix,
    multipleListeners: options.multipleListeners ?? false,
    idleTimeoutMs: idleTimeout * 1000,
    pollTimeout,
    maxPollTimeout,
    pollQueue,
    maxPollQueue,
    maxPollMessages,
    heartbeatMs: heartbeat * 1000,
    bodyLimit,
    allowedOrigins: checkAllowedOrigins(options.allowedOrigins, '@rt/sessions'),
    maxSessions,
    maxBufferedBytes
  }
}
