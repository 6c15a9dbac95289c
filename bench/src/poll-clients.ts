import http from 'node:http'
import { io, type Socket } from 'socket.io-client'
import type { Histogram } from './histogram.js'
import { now, type ClientTracker, type Payload } from './tracker.js'

export interface HttpAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** One HTTP exchange on a keep-alive agent, bounded by `timeoutMs`. */
export function exchange (agent: http.Agent, port: number, method: string, path: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method, path, headers, agent, timeout: timeoutMs }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }))
      response.on('error', reject)
    })
    request.on('timeout', () => request.destroy(new Error('request timed out')))
    request.on('error', reject)
    request.end(body)
  })
}

/** What every polling client exposes to the load worker. */
export interface BenchClient {
  readonly tracker: ClientTracker
  reconnects: number
  errors: number
  /** Poll requests answered since the client was ready (0 for streams and for clients that hide their requests). */
  polls: number
  /** Connects (and subscribes); resolves when messages published from now on will reach it. */
  open(timeoutMs: number): Promise<void>
  close(): void
}

export interface PollContext {
  port: number
  agent: http.Agent
  latency: Histogram
  onMessage: (at: number) => void
  /** Longest a server may hold one poll, seconds. */
  holdSeconds: number
}

/**
 * A polling client: `first()` runs once in `open`, then `poll()` loops until
 * closed. A failed poll counts an error and the loop goes on (bounded by the
 * worker's deadline, which closes every client).
 */
export abstract class PollLoopBase implements BenchClient {
  reconnects = 0
  errors = 0
  polls = 0
  protected stopped = false

  constructor (readonly tracker: ClientTracker, protected readonly context: PollContext) {}

  protected abstract first(): Promise<void>
  protected abstract poll(): Promise<void>

  protected deliver (payload: Payload): void {
    const at = now()
    if (this.tracker.receive(payload, at, this.context.latency)) this.context.onMessage(at)
  }

  protected request (method: string, path: string, headers: Record<string, string>, body?: string): Promise<HttpAnswer> {
    return exchange(this.context.agent, this.context.port, method, path, headers, body, (this.context.holdSeconds + 10) * 1000)
  }

  async open (timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error('not ready in time')), timeoutMs) })
    try {
      await Promise.race([this.first(), late])
    } finally {
      clearTimeout(timer)
    }
    void this.loop()
  }

  private async loop (): Promise<void> {
    while (!this.stopped) {
      try {
        await this.poll()
        this.polls++
      } catch {
        if (this.stopped) return
        this.errors++
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  }

  close (): void {
    this.stopped = true
  }
}

/** The ceiling's protocol: `GET /lp?stream=K&after=N` answers a JSON array of payloads after N, holding when there are none. */
export class CeilingPollClient extends PollLoopBase {
  private after = 0

  protected async first (): Promise<void> {
    // The cursor starts at 0: everything published from now on is fetched by the loop.
  }

  protected async poll (): Promise<void> {
    const answer = await this.request('GET', `/lp?stream=${this.tracker.stream}&after=${this.after}`, {})
    if (answer.status !== 200) throw new Error(`poll answered ${answer.status}`)
    const payloads = JSON.parse(answer.body) as Payload[]
    for (const payload of payloads) {
      this.deliver(payload)
      if (payload.s > this.after) this.after = payload.s
    }
  }
}

interface CategoryEvent { timestamp: number; category: string; data: Payload; id: string }

/**
 * golongpoll's client loop: `GET /events?category=&timeout=&since_time=&last_id=`,
 * moving `since_time`/`last_id` to the newest event received.
 */
export class CategoryPollClient extends PollLoopBase {
  private sinceTime = 0
  private lastId: string | undefined

  constructor (tracker: ClientTracker, context: PollContext, private readonly path: string, private readonly category: string) {
    super(tracker, context)
  }

  protected async first (): Promise<void> {
    this.sinceTime = Date.now() - 1000
  }

  protected async poll (): Promise<void> {
    let query = `category=${encodeURIComponent(this.category)}&timeout=${this.context.holdSeconds}&since_time=${this.sinceTime}`
    if (this.lastId !== undefined) query += `&last_id=${encodeURIComponent(this.lastId)}`
    const answer = await this.request('GET', `${this.path}?${query}`, {})
    if (answer.status !== 200) throw new Error(`poll answered ${answer.status}`)
    const body = JSON.parse(answer.body) as { events?: CategoryEvent[] }
    for (const event of body.events ?? []) {
      this.deliver(event.data)
      this.sinceTime = event.timestamp
      this.lastId = event.id
    }
  }
}

/** express-longpoll: `GET /poll/K` answers the next published payload; there is no cursor. */
export class ExpressLongpollClient extends PollLoopBase {
  private firstPoll: Promise<void> | undefined

  protected async first (): Promise<void> {
    this.firstPoll = this.poll()
    // The poll is held by the server once the request is out; give it a moment to be registered.
    await new Promise((resolve) => setTimeout(resolve, 20))
  }

  protected override async poll (): Promise<void> {
    if (this.firstPoll !== undefined) {
      const held = this.firstPoll
      this.firstPoll = undefined
      return held
    }
    const answer = await this.request('GET', `/poll/${this.tracker.stream}`, {})
    if (answer.status !== 200) throw new Error(`poll answered ${answer.status}`)
    this.deliver(JSON.parse(answer.body) as Payload)
  }
}

/** socket.io-client with `transports: ['polling']`, joining room K with an acknowledgement. */
export class SocketIoClient implements BenchClient {
  reconnects = 0
  errors = 0
  polls = 0
  private socket: Socket | undefined

  constructor (readonly tracker: ClientTracker, private readonly context: PollContext) {}

  open (timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = io(`http://127.0.0.1:${this.context.port}`, { transports: ['polling'], forceNew: true, reconnection: false, timeout: timeoutMs })
      this.socket = socket
      const timer = setTimeout(() => reject(new Error('not ready in time')), timeoutMs)
      socket.on('m', (payload: Payload) => {
        const at = now()
        if (this.tracker.receive(payload, at, this.context.latency)) this.context.onMessage(at)
      })
      socket.on('connect_error', () => { this.errors++ })
      socket.on('disconnect', (reason) => { if (reason !== 'io client disconnect') this.errors++ })
      socket.on('connect', () => {
        socket.emit('join', this.tracker.stream, () => {
          clearTimeout(timer)
          // Engine.IO's polling transport says when each poll request completes.
          socket.io.engine.transport.on('pollComplete', () => { this.polls++ })
          resolve()
        })
      })
    })
  }

  close (): void {
    this.socket?.close()
  }
}
