/**
 * Client helpers for a golongpoll-compatible server (`@rt/category-poll` or
 * golongpoll itself), for browsers and Node: `fetch` only, no dependency and no
 * Node import. Mirrors the Go `long_polling` wrapper's `Subscription` and
 * `Publish`, but API errors are thrown instead of hidden, and event data is any
 * JSON value rather than a string.
 *
 * @module @rt/category-poll/client
 */

/** One event. `id` is opaque: pass it back as `lastId`. */
export interface CategoryEvent<T = unknown> {
  /** Server time of the publish, ms since the Unix epoch. */
  timestamp: number
  category: string
  data: T
  id: string
}

/** Headers as a plain object or a `Headers` instance. */
export type HeaderValues = Record<string, string> | Headers

export interface SubscribeOptions {
  /** The subscribe endpoint, e.g. `http://localhost:8080/category/events`. */
  url: string
  category: string
  /** How long the server may hold the request, in seconds. Default 45 (golongpoll's clients). */
  timeoutSeconds?: number
  /** Only events after this time (ms). Absent: only events published after the request arrives. */
  sinceTime?: number
  /** The id of the last event seen: events sharing its millisecond are not skipped. Needs `sinceTime`. */
  lastId?: string
  headers?: HeaderValues
  /** Aborts the request. */
  signal?: AbortSignal
  /**
   * Extra time the client waits beyond `timeoutSeconds` before giving up, in
   * ms. Default 10 000: the server's timeout answer arrives first (the Go
   * wrapper's client gives up at the very moment the server answers).
   */
  graceMs?: number
}

/** What one subscribe request answered. */
export interface SubscriptionResponse<T = unknown> {
  status: number
  headers: Headers
  /** The events, oldest first; empty on a timeout. */
  events: CategoryEvent<T>[]
  /** `true` when the server answered `{"timeout": …}`. */
  timedOut: boolean
  /** The server's clock on a timeout: the `sinceTime` to use next. */
  timestamp: number | undefined
}

/** A failure the server reported (`{"error": …}` or an unexpected status), or a body that is not golongpoll's. */
export class CategoryPollError extends Error {
  override readonly name = 'CategoryPollError'
  constructor(message: string, readonly status: number, readonly body: unknown) {
    super(message)
  }
}

export interface PublishOptions {
  /** The publish endpoint, e.g. `http://localhost:8080/category/publish`. */
  url: string
  category: string
  /** Any JSON value but `null`. */
  data: unknown
  /** E.g. `{ authorization: 'Bearer <key>' }`. */
  headers?: HeaderValues
  signal?: AbortSignal
}

export interface PollOptions extends Omit<SubscribeOptions, 'signal'> {
  /** Stops the loop (the iterator then ends without an error). */
  signal?: AbortSignal
  /** First wait after a failure, in ms; doubled per consecutive failure, with jitter. Default 1000. */
  retryDelayMs?: number
  /** Longest wait between retries, in ms. Default 30 000 (golongpoll's `reattemptWaitSeconds`). */
  maxRetryDelayMs?: number
  /**
   * Called on every failure. Return `false` to stop: the iterator throws the
   * error. Return `true` to retry. Without it (or returning `undefined`),
   * network failures, 5xx, 408 and 429 are retried and other errors thrown
   * (a bad category or a refused request will not get better by retrying).
   */
  onError?: (error: unknown) => boolean | void
}

function headersOf(init: HeaderValues | undefined): Headers {
  return new Headers(init)
}

/** Links an optional outer signal to a controller; returns the unlink function. */
function link(outer: AbortSignal | undefined, controller: AbortController): () => void {
  if (outer === undefined) return () => {}
  const abort = (): void => controller.abort(outer.reason)
  if (outer.aborted) abort()
  else outer.addEventListener('abort', abort, { once: true })
  return () => outer.removeEventListener('abort', abort)
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text()
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new CategoryPollError(`unexpected answer (HTTP ${response.status}): ${text.slice(0, 200)}`, response.status, text)
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** One long-poll request. Resolves with events or a timeout; throws {@link CategoryPollError} on API errors. */
export async function subscribe<T = unknown>(options: SubscribeOptions): Promise<SubscriptionResponse<T>> {
  const timeoutSeconds = options.timeoutSeconds ?? 45
  const url = new URL(options.url)
  url.searchParams.set('category', options.category)
  url.searchParams.set('timeout', String(timeoutSeconds))
  if (options.sinceTime !== undefined) url.searchParams.set('since_time', String(options.sinceTime))
  if (options.lastId !== undefined && options.lastId !== '') url.searchParams.set('last_id', options.lastId)
  const controller = new AbortController()
  const unlink = link(options.signal, controller)
  const deadline = setTimeout(() => controller.abort(new Error('the server did not answer within timeoutSeconds + graceMs')),
    timeoutSeconds * 1000 + (options.graceMs ?? 10_000))
  try {
    const response = await fetch(url, { headers: headersOf(options.headers), signal: controller.signal })
    const body = await readJson(response)
    if (isRecord(body) && typeof body.error === 'string') throw new CategoryPollError(body.error, response.status, body)
    if (response.status !== 200) throw new CategoryPollError(`unexpected HTTP status ${response.status}`, response.status, body)
    if (isRecord(body) && Array.isArray(body.events)) {
      return { status: response.status, headers: response.headers, events: body.events as CategoryEvent<T>[], timedOut: false, timestamp: undefined }
    }
    if (isRecord(body) && typeof body.timeout === 'string' && typeof body.timestamp === 'number') {
      return { status: response.status, headers: response.headers, events: [], timedOut: true, timestamp: body.timestamp }
    }
    throw new CategoryPollError('unexpected answer: neither events, timeout nor error', response.status, body)
  } finally {
    clearTimeout(deadline)
    unlink()
  }
}

/** Publishes one event. Resolves when the server answered `{"success": true}`; throws {@link CategoryPollError} otherwise. */
export async function publish(options: PublishOptions): Promise<void> {
  const headers = headersOf(options.headers)
  if (!headers.has('content-type')) headers.set('content-type', 'application/json')
  const response = await fetch(options.url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ category: options.category, data: options.data }),
    signal: options.signal ?? null
  })
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text) as unknown
  } catch {
    // Not JSON (a proxy's error page…): reported below with the status.
  }
  if (response.status === 200 && isRecord(body) && body.success === true) return
  const message = isRecord(body) && typeof body.error === 'string' ? body.error : `publish failed with HTTP ${response.status}`
  throw new CategoryPollError(message, response.status, body)
}

/** Whether a failure is worth retrying by default. */
function retryable(error: unknown): boolean {
  if (!(error instanceof CategoryPollError)) return true
  return error.status >= 500 || error.status === 408 || error.status === 429
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

/**
 * Polls a category forever, yielding every event once, oldest first. It keeps
 * golongpoll's cursor: after events, `sinceTime`/`lastId` of the last one; after
 * a timeout, `sinceTime` advances to the server's `timestamp` (the id is kept).
 * Failures back off exponentially with jitter (see {@link PollOptions.onError}).
 * Breaking out of the loop or aborting `signal` cancels the request in flight.
 *
 * @example
 * for await (const event of poll({ url, category: 'farm', signal })) console.log(event.data)
 */
export async function* poll<T = unknown>(options: PollOptions): AsyncGenerator<CategoryEvent<T>, void, undefined> {
  const controller = new AbortController()
  const unlink = link(options.signal, controller)
  const { signal } = controller
  let sinceTime = options.sinceTime
  let lastId = options.lastId
  let failures = 0
  const firstDelay = options.retryDelayMs ?? 1000
  const maxDelay = options.maxRetryDelayMs ?? 30_000
  try {
    while (!signal.aborted) {
      let response: SubscriptionResponse<T>
      try {
        response = await subscribe<T>({ ...options, sinceTime, lastId, signal })
      } catch (error) {
        if (signal.aborted) return
        const verdict = options.onError?.(error)
        if (verdict === false || (verdict !== true && !retryable(error))) throw error
        const ceiling = Math.min(maxDelay, firstDelay * 2 ** Math.min(failures, 30))
        failures++
        // Half fixed, half random: clients that failed together do not come back together.
        await sleep(ceiling / 2 + Math.random() * ceiling / 2, signal)
        continue
      }
      failures = 0
      if (response.timedOut) {
        sinceTime = Math.max(sinceTime ?? -Infinity, response.timestamp!)
        continue
      }
      for (const event of response.events) {
        sinceTime = event.timestamp
        lastId = event.id
        yield event
      }
    }
  } finally {
    controller.abort()
    unlink()
  }
}
