import type { Transport } from '@anycable/core'

/** @anycable/core's TransportEvents (not exported from its index). */
interface Events {
  open: () => void
  close: (err?: Error) => void
  error: (err: Error) => void
  data: (payload: string) => void
}
type Listener = (...args: unknown[]) => void

/**
 * AnyCable's `@anycable/long-polling` transport, for `@anycable/core`'s
 * `createCable`. That package is not published on the public npm registry
 * (AnyCable Pro), so this is the closest faithful stand-in: the Transport
 * interface of @anycable/core 1.1.7 with the request pattern documented for
 * @anycable/long-polling 0.4 (../shared/protocols/anycable.md §4), the same
 * one `anycable-client.ts` follows: connect with an empty POST, poll with
 * `X-Anycable-Poll-ID` after a cooldown, buffer sends and flush them by
 * aborting the held poll and polling at once with `\n`-joined commands, the
 * token and `sid` as query parameters (`setToken`/`setParam`).
 */
export class LongPollingTransport implements Transport<string> {
  url: string
  private readonly listeners = new Map<keyof Events, Set<Listener>>()
  private pollId: string | undefined
  private buffer: string[] = []
  private abort: AbortController | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private sendTimer: NodeJS.Timeout | undefined
  private connected = false

  constructor(url: string, private readonly opts: { cooldown: number; sendBuffer: number } = { cooldown: 50, sendBuffer: 20 }) {
    this.url = url
  }

  displayName(): string {
    return 'LongPolling'
  }

  setURL(url: string): void {
    this.url = url
  }

  setParam(key: string, value: string): void {
    const url = new URL(this.url)
    url.searchParams.set(key, value)
    this.url = url.toString()
  }

  setToken(value: string, param = 'jid'): void {
    this.setParam(param, value)
  }

  async open(): Promise<void> {
    const response = await fetch(this.url, { method: 'POST' })
    if (!response.ok) {
      if (response.status === 401) this.process(await response.text())
      const error = new Error(`Unexpected status code: ${response.status}`)
      this.emit('error', error)
      throw error
    }
    this.connected = true
    this.pollId = response.headers.get('x-anycable-poll-id') ?? undefined
    this.emit('open')
    this.process(await response.text())
    this.schedule()
  }

  send(data: string): void {
    if (!this.connected) return
    this.buffer.push(data)
    this.sendTimer ??= setTimeout(() => this.flush(), this.opts.sendBuffer)
  }

  async close(): Promise<void> {
    if (!this.connected) return
    this.connected = false
    clearTimeout(this.pollTimer)
    clearTimeout(this.sendTimer)
    this.abort?.abort()
    this.emit('close')
  }

  on<E extends keyof Events>(event: E, callback: Events[E]): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) this.listeners.set(event, (set = new Set()))
    set.add(callback as Listener)
    return () => set.delete(callback as Listener)
  }

  once<E extends keyof Events>(event: E, callback: Events[E]): () => void {
    const off = this.on(event, ((...args: unknown[]) => {
      off()
      ;(callback as Listener)(...args)
    }) as Events[E])
    return off
  }

  private emit(event: keyof Events, ...args: unknown[]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) listener(...args)
  }

  private schedule(): void {
    clearTimeout(this.pollTimer)
    if (this.connected) this.pollTimer = setTimeout(() => void this.poll(), this.opts.cooldown)
  }

  private flush(): void {
    this.sendTimer = undefined
    if (!this.connected) return
    this.abort?.abort()
    void this.poll()
  }

  private async poll(): Promise<void> {
    clearTimeout(this.pollTimer)
    clearTimeout(this.sendTimer)
    this.sendTimer = undefined
    const body = this.buffer.length > 0 ? this.buffer.join('\n') : undefined
    this.buffer = []
    const controller = new AbortController()
    this.abort = controller
    try {
      const init: RequestInit = { method: 'POST', headers: { 'X-Anycable-Poll-ID': this.pollId! }, signal: controller.signal }
      if (body !== undefined) init.body = body
      const response = await fetch(this.url, init)
      if (this.abort === controller) this.abort = undefined
      const text = await response.text()
      if (!response.ok) {
        if (response.status === 401) this.process(text)
        this.connected = false
        this.emit('close', new Error(`Unexpected status code: ${response.status}`))
        return
      }
      this.process(text)
      this.schedule()
    } catch (error) {
      if (this.abort === controller) this.abort = undefined
      if ((error as Error).name !== 'AbortError' && this.connected) {
        this.connected = false
        this.emit('close', error as Error)
      }
    }
  }

  private process(text: string): void {
    for (const line of text.split('\n')) if (line !== '') this.emit('data', line)
  }
}
