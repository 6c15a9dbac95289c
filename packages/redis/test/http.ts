import { request as httpRequest, type IncomingMessage } from 'node:http'

/** One server-sent event. */
export interface SseEvent {
  event: string
  data: string
  id: string | undefined
}

/** An event stream read over a real socket, parsed as it arrives. */
export class EventStream {
  readonly events: SseEvent[] = []
  ended = false
  private buffer = ''
  private fields: { event?: string; data: string[]; id?: string } = { data: [] }

  constructor(readonly response: IncomingMessage) {
    response.setEncoding('utf8')
    response.on('data', (chunk: string) => this.parse(chunk))
    response.on('close', () => (this.ended = true))
  }

  /** The data events (broadcasts), in order. */
  get messages(): SseEvent[] {
    return this.events.filter((event) => event.event === 'message')
  }

  close(): void {
    this.response.destroy()
  }

  private parse(chunk: string): void {
    this.buffer += chunk
    let newline: number
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline)
      this.buffer = this.buffer.slice(newline + 1)
      if (line === '') {
        const { event, data, id } = this.fields
        if (data.length > 0 || event !== undefined) this.events.push({ event: event ?? 'message', data: data.join('\n'), id })
        this.fields = { data: [] }
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':')
        const value = line.slice(colon + 2)
        const name = line.slice(0, colon)
        if (name === 'data') this.fields.data.push(value)
        else if (name === 'event') this.fields.event = value
        else if (name === 'id') this.fields.id = value
      }
    }
  }
}

/** Opens an SSE request; resolves once the status and headers are in. */
export function openEvents(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (response) => resolve(new EventStream(response)))
    req.on('error', reject)
    req.end()
  })
}

/** One long-polling request: its status, poll id and JSON lines. */
export async function longPoll(url: string, id?: string, body?: string): Promise<{ status: number; id: string | null; lines: Array<Record<string, unknown>> }> {
  const init: RequestInit = { method: 'POST', headers: id === undefined ? {} : { 'x-anycable-poll-id': id } }
  if (body !== undefined) init.body = body
  const response = await fetch(url, init)
  const text = await response.text()
  return {
    status: response.status,
    id: response.headers.get('x-anycable-poll-id'),
    lines: text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>)
  }
}

/** The `subscribe` command for a public stream. */
export const subscribeTo = (stream: string): string =>
  JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: stream }) })

/** The broadcast payloads of long-polling lines, in order. */
export const payloads = (lines: Array<Record<string, unknown>>): unknown[] =>
  lines.filter((line) => line.type === undefined && 'message' in line).map((line) => line.message)
