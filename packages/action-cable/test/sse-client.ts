import { request } from 'node:http'

/** One server-sent event as this test client reads it. */
export interface SseEvent {
  event: string
  data: string
  id: string | undefined
}

/** A minimal event-stream reader over a real socket: enough for the bridge's tests. */
export class EventStream {
  readonly events: SseEvent[] = []
  ended = false
  body = ''
  private read = 0
  private pending = ''
  private notify: (() => void) | undefined

  constructor(readonly status: number, private readonly destroy: () => void, source: NodeJS.ReadableStream) {
    source.setEncoding('utf8')
    source.on('data', (chunk: string) => {
      this.body += chunk
      this.pending += chunk
      let end: number
      while ((end = this.pending.indexOf('\n\n')) >= 0) {
        const block = this.pending.slice(0, end)
        this.pending = this.pending.slice(end + 2)
        const event: SseEvent = { event: 'message', data: '', id: undefined }
        const data: string[] = []
        for (const line of block.split('\n')) {
          const colon = line.indexOf(':')
          if (colon <= 0) continue
          const field = line.slice(0, colon)
          const value = line.slice(colon + 2)
          if (field === 'data') data.push(value)
          else if (field === 'event') event.event = value
          else if (field === 'id') event.id = value
        }
        if (data.length > 0) this.events.push({ ...event, data: data.join('\n') })
      }
      this.notify?.()
    })
    source.on('close', () => {
      this.ended = true
      this.notify?.()
    })
  }

  /** Skips events up to the next one that matches, and returns it. */
  async nextMatching(match: (event: SseEvent) => boolean): Promise<SseEvent> {
    for (;;) {
      while (this.read < this.events.length) {
        const event = this.events[this.read++]!
        if (match(event)) return event
      }
      if (this.ended) throw new Error(`the stream ended; it sent:\n${this.body}`)
      await new Promise<void>((resolve) => { this.notify = resolve })
    }
  }

  async end(): Promise<void> {
    while (!this.ended) await new Promise<void>((resolve) => { this.notify = resolve })
  }

  close(): void {
    this.destroy()
  }
}

export function open(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (response) => {
      resolve(new EventStream(response.statusCode!, () => response.destroy(), response))
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Opens a stream and reads up to its welcome and `confirmations` confirmations. */
export async function subscribed(url: string, confirmations = 1, options: { headers?: Record<string, string> } = {}): Promise<EventStream> {
  const stream = await open(url, options)
  if (stream.status !== 200) throw new Error(`status ${stream.status}`)
  await stream.nextMatching((event) => event.event === 'welcome')
  for (let i = 0; i < confirmations; i++) await stream.nextMatching((event) => event.event === 'confirm_subscription')
  return stream
}

export const json = (event: SseEvent): unknown => JSON.parse(event.data)
