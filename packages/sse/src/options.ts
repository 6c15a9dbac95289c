import { checkAllowedOrigins } from '@rt/core'

/** Options of the `@rt/sse` Fastify plugin. */
export interface RtSseOptions {
  /**
   * Where the event stream is served (GET, POST, OPTIONS). Default `/events`,
   * AnyCable's `--sse_path`, so clients written for AnyCable need no change.
   */
  path?: string
  /**
   * Milliseconds between pings (`event: ping` with Unix seconds; a `:` comment
   * in raw mode). Default 3000, AnyCable's `ping_interval`: short enough for
   * proxies with 30–60 s idle timeouts and for clients that watch for silence.
   * The first ping comes at a random time between 0.5× and 1.5× the interval,
   * so connections opened together do not ping together.
   */
  pingInterval?: number
  /**
   * Bytes a connection may have written but not yet sent (its socket and
   * response buffers) before it is cut off with
   * `{"type":"disconnect","reason":"slow","reconnect":true}`; the client then
   * resumes from history with its `Last-Event-ID`. Default 1 MiB: room for a
   * full history replay (100 messages by default) of sizeable payloads, while
   * a thousand stuck clients still cost about 1 GiB at most, not unbounded memory.
   */
  maxBufferedBytes?: number
  /**
   * Largest POST body (JSONL subscribe commands), in bytes; larger bodies get
   * 413. Default 65536, AnyCable's limit for this endpoint.
   */
  bodyLimit?: number
  /**
   * Origins allowed by CORS, with AnyCable's `allowed_origins` matching: a host
   * (with port) such as `example.com` or `localhost:3000`, `*.example.com`
   * for subdomains, or `*` for any (answered `Access-Control-Allow-Origin: *`,
   * which browsers never combine with cookies). Default: no CORS at all, so only
   * same-origin pages read the stream (AnyCable allows `*` when its
   * `allowed_origins` is empty; pass `['*']` for that).
   */
  allowedOrigins?: string[]
  /**
   * Lets a POST carrying `X-RT-SID: <sid from the welcome>` send JSONL
   * commands (`message`, `subscribe`, `unsubscribe`, `history`) to that open
   * stream, which answers on the stream: an event stream is one-way, and this
   * is how `@rt/client` performs channel actions over SSE. Default true; the
   * sid is 128 random bits only the stream's reader has seen. AnyCable has no
   * such request (a POST always opens a stream there).
   */
  remoteCommands?: boolean
}

/** Options after validation, defaults applied. */
export interface ResolvedOptions {
  path: string
  pingInterval: number
  maxBufferedBytes: number
  bodyLimit: number
  allowedOrigins: string[] | undefined
  remoteCommands: boolean
}

function fail(message: string): never {
  throw new TypeError(`@rt/sse: ${message}`)
}

function positiveInteger(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) fail(`${name} must be a positive integer`)
  return value
}

/** Checks the options at registration time; errors name the package and the option. */
export function resolveOptions(options: RtSseOptions): ResolvedOptions {
  const path = options.path ?? '/events'
  if (typeof path !== 'string' || !/^\/[^?#\s]*[^/?#\s]$/.test(path)) {
    fail('path must start with "/", not end with "/", and hold no query, fragment or spaces')
  }
  if (options.remoteCommands !== undefined && typeof options.remoteCommands !== 'boolean') fail('remoteCommands must be a boolean')
  return {
    path,
    pingInterval: positiveInteger(options.pingInterval, 'pingInterval', 3000),
    maxBufferedBytes: positiveInteger(options.maxBufferedBytes, 'maxBufferedBytes', 1024 * 1024),
    bodyLimit: positiveInteger(options.bodyLimit, 'bodyLimit', 65536),
    allowedOrigins: checkAllowedOrigins(options.allowedOrigins, '@rt/sse'),
    remoteCommands: options.remoteCommands ?? true
  }
}
