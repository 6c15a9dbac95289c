import { checkAllowedOrigins } from '@rt/core'

/**
 * Options of the `@rt/long-poll` plugin. Names, units and defaults are
 * AnyCable's (`--poll_path`, `--poll_interval`, `--poll_flush_interval`,
 * `--poll_max_request_size`, `--poll_keepalive_timeout`, `--allowed_origins`),
 * so a deployment can move between the two without re-tuning its clients.
 */
export interface LongPollOptions {
  /**
   * The endpoint every request is POSTed to. Default `/lp`, AnyCable's
   * `--poll_path`, which is where `@anycable/long-polling` users point their
   * transport.
   */
  path?: string
  /**
   * Seconds an idle poll is held open before it is answered with an empty
   * body. Default 15 (AnyCable's `--poll_interval`): long enough that an idle
   * client costs one request per 15 s, short enough to stay under the 30–60 s
   * idle timeouts of common proxies and load balancers.
   */
  pollInterval?: number
  /**
   * Milliseconds a poll keeps gathering messages after the first one is
   * pending, before it answers. Default 500 (AnyCable's `--poll_flush_interval`):
   * a burst of broadcasts goes out in one response instead of one request per
   * message, at the cost of at most half a second of latency. 0 answers as
   * soon as anything is pending.
   */
  flushInterval?: number
  /**
   * Largest request body in bytes; a bigger one is refused with 413 before it
   * is buffered whole. Default 65536 (AnyCable's `--poll_max_request_size`):
   * commands are small, and a poll is not an upload.
   */
  maxRequestSize?: number
  /**
   * Most bytes of stream messages one answer carries. Default 1048576 (1 MiB,
   * `@rt/sse`'s `maxBufferedBytes`): what does not fit waits for the next poll
   * (positions advance only for what was written), so a burst of broadcasts
   * cannot make an answer of many megabytes, and a client that does not read
   * its answer holds at most about this much of the server's memory. A single
   * message bigger than this still goes out, alone. Control messages (command
   * replies, history backlogs) are not held back. An answer the client does not
   * take within `keepaliveTimeout` is cut off (its socket destroyed, nothing
   * confirmed), as `@rt/sse` cuts off a slow reader. AnyCable has no such cap.
   */
  maxAnswerSize?: number
  /**
   * Seconds a session survives without a request in flight. Default 5
   * (AnyCable's `--poll_keepalive_timeout`): the client re-polls 500 ms after
   * every answer, so 5 s of silence means it is gone. The session is then
   * closed (its channels' `unsubscribed` callbacks run) and the next poll with
   * its id gets 401 with a `session_expired` disconnect; it can still be
   * restored by its sid for core's `sessionsTtl`.
   */
  keepaliveTimeout?: number
  /**
   * Origins allowed by CORS, AnyCable's `--allowed_origins` rule: hosts
   * (`example.com`, `localhost:3000`), `*.example.com`, or `*` (answered
   * `Access-Control-Allow-Origin: *`, never with cookies). Default: no CORS at
   * all, same-origin clients only (AnyCable's default is `*`: pass `['*']`). `X-Anycable-Poll-ID`
   * is always exposed to browsers and allowed in preflight, since
   * `@anycable/long-polling` reads and sends it.
   */
  allowedOrigins?: string[]
}

/** Options with defaults applied, in milliseconds. */
export interface ResolvedOptions {
  path: string
  pollIntervalMs: number
  flushIntervalMs: number
  maxRequestSize: number
  maxAnswerSize: number
  keepaliveTimeoutMs: number
  allowedOrigins: string[] | undefined
}

export const DEFAULT_PATH = '/lp'
export const DEFAULT_POLL_INTERVAL = 15
export const DEFAULT_FLUSH_INTERVAL = 500
export const DEFAULT_MAX_REQUEST_SIZE = 64 * 1024
export const DEFAULT_MAX_ANSWER_SIZE = 1024 * 1024
export const DEFAULT_KEEPALIVE_TIMEOUT = 5

function fail(message: string): never {
  throw new TypeError(`@rt/long-poll: ${message}`)
}

function duration(value: unknown, name: string, fallback: number, unit: string, allowZero = false): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (value === 0 && !allowZero)) {
    fail(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number of ${unit}`)
  }
  return value
}

/** Checks the options at registration and applies AnyCable's defaults. */
export function resolveOptions(options: LongPollOptions): ResolvedOptions {
  const path = options.path ?? DEFAULT_PATH
  if (typeof path !== 'string' || !path.startsWith('/') || /[*:?#\s]/.test(path)) {
    fail('path must start with "/" and hold no wildcard, parameter or whitespace')
  }
  const maxRequestSize = options.maxRequestSize ?? DEFAULT_MAX_REQUEST_SIZE
  if (!Number.isInteger(maxRequestSize) || maxRequestSize <= 0) fail('maxRequestSize must be a positive integer number of bytes')
  const maxAnswerSize = options.maxAnswerSize ?? DEFAULT_MAX_ANSWER_SIZE
  if (!Number.isInteger(maxAnswerSize) || maxAnswerSize <= 0) fail('maxAnswerSize must be a positive integer number of bytes')
  return {
    path,
    pollIntervalMs: duration(options.pollInterval, 'pollInterval', DEFAULT_POLL_INTERVAL, 'seconds') * 1000,
    flushIntervalMs: duration(options.flushInterval, 'flushInterval', DEFAULT_FLUSH_INTERVAL, 'milliseconds', true),
    maxRequestSize,
    maxAnswerSize,
    keepaliveTimeoutMs: duration(options.keepaliveTimeout, 'keepaliveTimeout', DEFAULT_KEEPALIVE_TIMEOUT, 'seconds') * 1000,
    allowedOrigins: checkAllowedOrigins(options.allowedOrigins, '@rt/long-poll')
  }
}
