import http from 'node:http'
import type { Histogram } from './histogram.js'
import { now, type ClientTracker, type Payload } from './tracker.js'

/** Finds the benchmark payload in an SSE `data` field: the payload itself, or an Action Cable broadcast's `message`. */
export function extractPayload (data: string): Payload | undefined {
  if (!data.includes('"s":')) return undefined
  let value: unknown
  try {
    value = JSON.parse(data)
  } catch {
    return undefined
  }
  // A JSON text holding `"s":` (a quote outside any string) parses to an object or an array, never to null or a primitive.
  const record = value as { s?: unknown; t?: unknown; message?: unknown }
  if (typeof record.s === 'number' && typeof record.t === 'number') return record as Payload
  const message = record.message as { s?: unknown; t?: unknown } | null | undefined
  if (typeof message === 'object' && message !== null && typeof message.s === 'number' && typeof message.t === 'number') return message as Payload
  return undefined
}

export interface SseClientOptions {
  port: number
  /** Request path, query included. */
  path: string
  /** Ready once a `data` field contains this text (e.g. `confirm_subscription`); otherwise ready when the response headers arrive. */
  readyMarker?: string
  /** Reconnections allowed after the server ends the stream (a real EventSource retries forever; a bench client stops). */
  maxReconnects: number
  /** Source address to connect from (default: the system's choice). */
  localAddress?: string | undefined
}

/**
 * One EventSource-like client on a raw `node:http` request: parses `id:` and
 * `data:` fields, counts the payloads it gets, and reconnects with
 * `Last-Event-ID` when the stream ends (or when {@link drop} cuts it).
 */
export class SseClient {
  lastEventId: string | undefined
  reconnects = 0
  errors = 0
  /** A stream, not polls. */
  readonly polls = 0
  private request: http.ClientRequest | undefined
  private buffer = ''
  private stopped = false
  private ready = false
  private onReady: (() => void) | undefined

  constructor (
    readonly tracker: ClientTracker,
    private readonly latency: Histogram,
    private readonly options: SseClientOptions,
    private readonly onMessage: (at: number) => void
  ) {}

  /** Opens the stream; resolves when it is ready (see {@link SseClientOptions.readyMarker}), rejects after `timeoutMs`. */
  open (timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onReady = undefined
        reject(new Error('not ready in time'))
      }, timeoutMs)
      this.onReady = () => {
        clearTimeout(timer)
        resolve()
      }
      this.connect()
    })
  }

  private markReady (): void {
    if (this.ready) return
    this.ready = true
    const done = this.onReady
    this.onReady = undefined
    done?.()
  }

  private connect (): void {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId
    this.buffer = ''
    const request = http.request({ host: '127.0.0.1', port: this.options.port, path: this.options.path, headers, agent: false, ...(this.options.localAddress === undefined ? {} : { localAddress: this.options.localAddress }) })
    this.request = request
    request.on('response', (response) => {
      if (response.statusCode !== 200) {
        this.errors++
        response.resume()
        return
      }
      response.setEncoding('utf8')
      if (this.options.readyMarker === undefined) this.markReady()
      response.on('data', (chunk: string) => this.feed(chunk))
    })
    request.on('error', () => {
      if (!this.stopped) this.errors++
    })
    request.on('close', () => {
      if (this.request !== request || this.stopped) return
      this.request = undefined
      if (this.reconnects >= this.options.maxReconnects) return
      this.reconnects++
      setImmediate(() => { if (!this.stopped) this.connect() })
    })
    request.end()
  }

  private feed (chunk: string): void {
    this.buffer += chunk
    let end = this.buffer.indexOf('\n\n')
    while (end >= 0) {
      const event = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      this.event(event)
      end = this.buffer.indexOf('\n\n')
    }
  }

  private event (text: string): void {
    let data: string | undefined
    for (const line of text.split('\n')) {
      if (line.startsWith('data:')) {
        const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5)
        data = data === undefined ? value : `${data}\n${value}`
      } else if (line.startsWith('id:')) {
        this.lastEventId = line.charCodeAt(3) === 32 ? line.slice(4) : line.slice(3)
      }
    }
    if (data === undefined) return
    if (!this.ready && this.options.readyMarker !== undefined && data.includes(this.options.readyMarker)) this.markReady()
    const payload = extractPayload(data)
    if (payload === undefined) return
    const at = now()
    if (this.tracker.receive(payload, at, this.latency)) this.onMessage(at)
  }

  /** Cuts the connection at once; the client reconnects with `Last-Event-ID` as a browser would. */
  drop (): void {
    this.request?.destroy()
  }

  close (): void {
    this.stopped = true
    this.request?.destroy()
    this.request = undefined
  }
}
