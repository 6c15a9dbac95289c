import { randomBytes } from 'node:crypto'
import http from 'node:http'
import Fastify, { type FastifyInstance } from 'fastify'
import { rtCore, type Channel, type RtCoreOptions } from '@rt/core'
import { rtSessions, type SessionsOptions } from '../src/index.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** A fresh client-chosen session id (128 random bits, base64url: 22 characters). */
export const newId = (): string => randomBytes(16).toString('base64url')

/** Calls of the demo channel's `unsubscribed`, for the tests to check. */
export const unsubscribedCalls: Array<{ room: unknown; user: unknown }> = []

/**
 * The demo channel: `{"channel":"RoomChannel","room":"x"}` streams `room_x`
 * (room "forbidden" is rejected), transmits a greeting on subscribe, and its
 * `say` action broadcasts `{user, text}` to the room.
 */
export const RoomChannel: Channel = {
  subscribed(ctx) {
    if (ctx.params.room === 'forbidden') return ctx.reject()
    ctx.streamFrom(`room_${String(ctx.params.room)}`)
    ctx.transmit({ greeting: `welcome to ${String(ctx.params.room)}` })
  },
  unsubscribed(ctx) {
    unsubscribedCalls.push({ room: ctx.params.room, user: ctx.identity.user })
  },
  actions: {
    async say(ctx, data) {
      await ctx.broadcast(`room_${String(ctx.params.room)}`, { user: ctx.identity.user, text: data.text })
    },
    fail() {
      throw new Error('boom')
    }
  }
}

/** Identity from the `user` cookie; the user "nobody" is refused, no cookie is "guest". */
export function cookieAuth(request: { headers: Record<string, string | string[] | undefined> }): { user: string } | false {
  const cookie = String(request.headers.cookie ?? '')
  const user = /(?:^|;\s*)user=([^;]*)/.exec(cookie)?.[1] ?? 'guest'
  return user === 'nobody' ? false : { user }
}

export interface Started {
  app: FastifyInstance
  /** `http://127.0.0.1:port` + the plugin's path, without a trailing slash. */
  base: string
  origin: string
}

/** Starts an app with @rt/core (the demo channel, cookie auth, public streams) and @rt/sessions, listening on a real port. */
export async function start(
  t: Teardown,
  options: SessionsOptions = {},
  core: RtCoreOptions = {},
  register: (app: FastifyInstance) => Promise<void> = async (app) => { await app.register(rtSessions, { prefix: '/sessions', ...options }) }
): Promise<Started> {
  const app = Fastify()
  await app.register(rtCore, { channels: { RoomChannel }, authenticate: cookieAuth, publicStreams: true, ...core })
  await register(app)
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, base: `${origin}/sessions`, origin }
}

/** POSTs requests (an array, or a raw body string). */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers }
}

/** A long poll. */
export async function poll(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(url, { headers: { accept: 'application/json', ...headers } })
  return { status: res.status, body: await res.json(), headers: res.headers }
}

/** One parsed Server-Sent Event. */
export interface ParsedEvent {
  event: string
  data: string
  id?: string
  retry?: number
  json: Record<string, unknown>
}

/** An EventSource over a real socket: collects events and lets a test wait for them. */
export class EventStream {
  readonly events: ParsedEvent[] = []
  readonly comments: string[] = []
  status = 0
  headers: http.IncomingHttpHeaders = {}
  ended = false
  private buffer = ''
  private waiters: Array<() => void> = []
  private request: http.ClientRequest | undefined
  private response: http.IncomingMessage | undefined

  /** Opens the stream and resolves once the status line and headers arrived. */
  static open(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
    const stream = new EventStream()
    return new Promise((resolve, reject) => {
      stream.request = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
        stream.response = response
        stream.status = response.statusCode ?? 0
        stream.headers = response.headers
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => stream.feed(chunk))
        response.on('end', () => stream.finish())
        response.on('error', () => stream.finish())
        response.on('close', () => stream.finish())
        resolve(stream)
      })
      stream.request.on('error', reject)
    })
  }

  /** The body of a refused (non-200) answer. */
  async text(): Promise<string> {
    await this.until(() => this.ended)
    return this.buffer
  }

  /** Stops reading the socket (the client "does not keep up"). */
  pause(): void {
    this.response?.pause()
  }

  /** Resolves when `predicate` holds (checked after every chunk and at the end). */
  until(predicate: () => boolean): Promise<void> {
    if (predicate()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (predicate()) resolve()
        else if (this.ended) reject(new Error(`stream ended; events: ${JSON.stringify(this.events.map((e) => e.data))}`))
        else this.waiters.push(check)
      }
      this.waiters.push(check)
    })
  }

  /** Waits for `count` events in total and returns them. */
  async take(count: number): Promise<ParsedEvent[]> {
    await this.until(() => this.events.length >= count)
    return this.events.slice(0, count)
  }

  close(): void {
    this.request?.destroy()
  }

  private feed(chunk: string): void {
    this.buffer += chunk
    if (this.status !== 200) return
    let end: number
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const frame = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      this.parse(frame)
    }
    this.wake()
  }

  private parse(frame: string): void {
    let event = 'message'
    const data: string[] = []
    let id: string | undefined
    let retry: number | undefined
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) {
        this.comments.push(line)
        continue
      }
      const colon = line.indexOf(': ')
      const [field, value] = [line.slice(0, colon), line.slice(colon + 2)]
      if (field === 'event') event = value
      else if (field === 'data') data.push(value)
      else if (field === 'id') id = value
      else if (field === 'retry') retry = Number(value)
    }
    if (data.length === 0) return
    const text = data.join('\n')
    const parsed: ParsedEvent = { event, data: text, json: JSON.parse(text) as Record<string, unknown> }
    if (id !== undefined) parsed.id = id
    if (retry !== undefined) parsed.retry = retry
    this.events.push(parsed)
  }

  private finish(): void {
    if (this.ended) return
    this.ended = true
    this.wake()
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const waiter of waiters) waiter()
  }
}

/** Waits until `predicate` holds, polling on the event loop (no fixed delays). */
export async function eventually(predicate: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (predicate()) return
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  throw new Error(`timed out waiting for ${what}`)
}
