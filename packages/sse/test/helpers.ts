import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect as connectHttp2, type ClientHttp2Session, type IncomingHttpHeaders as Http2Headers } from 'node:http2'
import type { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { rtCore, type RtCoreOptions } from '@rt/core'
import { http2UnderTest, protocolUnderTest, testCertificate, testFastify, useProtocolForFetch, type TestProtocol } from '@rt/core/testing'
import { rtSse, type RtSseOptions } from '../src/index.js'

// RT_TEST_HTTP2=1 (the second run of `npm test`): the app serves HTTP/2 over TLS only, and fetch negotiates h2.
await useProtocolForFetch()

export interface SseEvent {
  /** `message` when the event had no `event:` line. */
  event: string
  data: string
  id: string | undefined
  retry: number | undefined
}

export interface TestApp {
  app: FastifyInstance
  /** `http://127.0.0.1:<port>` (`https://` over HTTP/2) */
  base: string
}

/**
 * An app on a real socket (HTTP/1.1, or HTTP/2 with TLS when RT_TEST_HTTP2=1 or `protocol` says so): @rt/core
 * with public streams, then @rt/sse. Closed at the end of the test.
 */
export async function startApp(
  t: { teardown(fn: () => unknown): void },
  core: RtCoreOptions = {},
  sse: RtSseOptions = {},
  protocol: TestProtocol = protocolUnderTest()
): Promise<TestApp> {
  const app = testFastify({}, protocol)
  await app.register(rtCore, { publicStreams: true, ...core })
  await app.register(rtSse, { pingInterval: 60_000, ...sse })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, base }
}

/**
 * One event stream read over a real socket: every byte is kept (`text`) and
 * parsed into events and comments as it arrives.
 */
export class EventStream {
  text = ''
  readonly events: SseEvent[] = []
  comments = 0
  ended = false
  private readonly waiters: Array<() => void> = []
  private buffer = ''
  private fields: { event?: string; data: string[]; id?: string; retry?: number } = { data: [] }
  private cursor = 0

  /** The answer's body: an HTTP/1.1 response or an HTTP/2 stream. */
  constructor(readonly response: Readable, readonly status: number, readonly headers: IncomingHttpHeaders) {
    response.setEncoding('utf8')
    response.on('data', (chunk: string) => {
      this.text += chunk
      this.parse(chunk)
      this.wake()
    })
    response.on('close', () => {
      this.ended = true
      this.wake()
    })
  }

  /** The next event not read yet (waits for it). */
  async next(): Promise<SseEvent> {
    await this.until(() => this.events.length > this.cursor)
    return this.events[this.cursor++]!
  }

  /** Reads events until one matches, returning it (and skipping the others). */
  async nextMatching(match: (event: SseEvent) => boolean): Promise<SseEvent> {
    for (;;) {
      const event = await this.next()
      if (match(event)) return event
    }
  }

  /** The next `n` events. */
  async take(n: number): Promise<SseEvent[]> {
    const taken: SseEvent[] = []
    for (let i = 0; i < n; i++) taken.push(await this.next())
    return taken
  }

  /** Waits until the server ends the response (or the socket closes). */
  async end(): Promise<void> {
    await this.until(() => this.ended)
  }

  /** Resolves when `condition` holds (checked on every chunk). */
  async until(condition: () => boolean): Promise<void> {
    while (!condition()) {
      if (this.ended) throw new Error(`the stream ended while waiting; received:\n${this.text}`)
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
  }

  /** Closes the client side. */
  close(): void {
    this.response.destroy()
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter()
  }

  private parse(chunk: string): void {
    this.buffer += chunk
    let newline: number
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline)
      this.buffer = this.buffer.slice(newline + 1)
      if (line === '') {
        const { event, data, id, retry } = this.fields
        if (data.length > 0 || event !== undefined) this.events.push({ event: event ?? 'message', data: data.join('\n'), id, retry })
        this.fields = { data: [] }
      } else if (line.startsWith(':')) {
        this.comments++
      } else {
        const colon = line.indexOf(':')
        const name = line.slice(0, colon)
        const value = line.slice(colon + 2)
        if (name === 'data') this.fields.data.push(value)
        else if (name === 'event') this.fields.event = value
        else if (name === 'id') this.fields.id = value
        else if (name === 'retry') this.fields.retry = Number(value)
        else throw new Error(`unexpected field line: ${line}`)
      }
    }
  }
}

export interface OpenOptions {
  method?: string
  headers?: Record<string, string>
  body?: string
  /** Aborting it resets the request (HTTP/1.1: the connection; HTTP/2: the stream). */
  signal?: AbortSignal
}

/** Whether this run is the HTTP/2 one (RT_TEST_HTTP2=1): the few protocol-specific assertions branch on it. */
export const http2 = http2UnderTest()

/**
 * Opens a request and resolves once the status and headers are in: over HTTP/2 for an `https:` URL (one
 * session per origin, as a browser), over a fresh HTTP/1.1 connection for an `http:` one.
 */
export function open(url: string, options: OpenOptions = {}): Promise<EventStream> {
  if (url.startsWith('https:')) return openHttp2(new URL(url), options)
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false, signal: options.signal }, (response) =>
      resolve(new EventStream(response, response.statusCode!, response.headers)))
    req.on('error', reject)
    req.end(options.body)
  })
}

const http2Sessions = new Map<string, ClientHttp2Session>()

function http2Session(origin: string): ClientHttp2Session {
  const open = http2Sessions.get(origin)
  if (open !== undefined && !open.closed && !open.destroyed) return open
  const session = connectHttp2(origin, { ca: testCertificate().cert })
  // Errors reach the streams; the session is dropped once the server closes it (GOAWAY on app.close()).
  session.on('error', () => {})
  const forget = (): void => { if (http2Sessions.get(origin) === session) http2Sessions.delete(origin) }
  session.once('goaway', forget)
  session.once('close', forget)
  http2Sessions.set(origin, session)
  return session
}

function openHttp2(url: URL, options: OpenOptions): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    // Content-Length as node:http sends it: Fastify takes an HTTP/2 request with neither it nor a Content-Type as body-less.
    const length = options.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(options.body)) }
    const headers = { ...length, ...options.headers, ':method': options.method ?? 'GET', ':path': `${url.pathname}${url.search}` }
    const stream = http2Session(url.origin).request(headers, options.signal === undefined ? {} : { signal: options.signal })
    let answered = false
    stream.once('response', (headers: Http2Headers) => {
      answered = true
      const { ':status': status, ...rest } = headers
      resolve(new EventStream(stream, Number(status), rest as IncomingHttpHeaders))
    })
    // Before the answer an error fails the request; after it, the stream's 'close' ends the EventStream.
    stream.on('error', (error) => { if (!answered) reject(error) })
    stream.end(options.body)
  })
}

/** Opens a request and reads its whole (non-stream) answer. */
export async function answer(url: string, options: OpenOptions = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const stream = await open(url, options)
  await stream.end()
  return { status: stream.status, headers: stream.headers, body: stream.text }
}

/** Opens an event stream and reads up to its welcome and the confirmations of `confirmations` subscriptions. */
export async function subscribed(url: string, confirmations = 1, options: OpenOptions = {}): Promise<EventStream> {
  const stream = await open(url, options)
  if (stream.status !== 200) throw new Error(`status ${stream.status}: ${await stream.end().then(() => stream.text)}`)
  await stream.nextMatching((event) => event.event === 'welcome')
  for (let i = 0; i < confirmations; i++) await stream.nextMatching((event) => event.event === 'confirm_subscription')
  return stream
}

export const json = (event: SseEvent): unknown => JSON.parse(event.data)

/** Resolves after pending I/O callbacks ran. */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
