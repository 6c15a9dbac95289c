import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import Fastify, { type FastifyInstance } from 'fastify'
import { rtCore, type RtCoreOptions } from '@rt/core'
import { rtSse, type RtSseOptions } from '../src/index.js'

export interface SseEvent {
  /** `message` when the event had no `event:` line. */
  event: string
  data: string
  id: string | undefined
  retry: number | undefined
}

export interface TestApp {
  app: FastifyInstance
  /** `http://127.0.0.1:<port>` */
  base: string
}

/** An app on a real socket: @rt/core with public streams, then @rt/sse. Closed at the end of the test. */
export async function startApp(
  t: { teardown(fn: () => unknown): void },
  core: RtCoreOptions = {},
  sse: RtSseOptions = {}
): Promise<TestApp> {
  const app = Fastify()
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

  constructor(readonly response: IncomingMessage) {
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

  get status(): number {
    return this.response.statusCode!
  }

  get headers(): IncomingHttpHeaders {
    return this.response.headers
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
}

/** Opens a request and resolves once the status and headers are in. */
export function open(url: string, options: OpenOptions = {}): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (response) => resolve(new EventStream(response)))
    req.on('error', reject)
    req.end(options.body)
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
