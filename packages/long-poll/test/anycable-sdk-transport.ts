/**
 * An `@anycable/core` Transport that behaves like AnyCable's long-polling
 * transport (`@anycable/long-polling`, AnyCable Pro, not on npm), written from
 * its documented behaviour (../shared/protocols/anycable.md §4):
 * - open: POST the URL (with its params: `sid` after a welcome, as the cable sets
 *   it) without a body; on 2xx emit `open`, emit each body line as `data`, keep
 *   `X-Anycable-Poll-ID`, poll after `cooldown`, emulate pings;
 * - poll: POST with `X-Anycable-Poll-ID` and the buffered commands joined by
 *   `\n`; on 2xx emit the lines and poll again after `cooldown`; any failure
 *   (network, non-2xx) closes the transport with the error — the cable reconnects;
 * - send: buffer; `sendBuffer` ms later abort the held poll and poll at once with
 *   the commands.
 */
import type { Transport } from '@anycable/core'

/** The events a Transport emits (`TransportEvents` in `@anycable/core`, which does not export it). */
interface Events {
  open: () => void
  close: (err?: Error) => void
  error: (err: Error) => void
  data: (payload: string) => void
}
type Listener = Events[keyof Events]

export class AnyCableLongPollingTransport implements Transport<string> {
  url: string
  private readonly params = new Map<string, string>()
  private readonly listeners = new Map<keyof Events, Set<Listener>>()
  private buffer: string[] = []
  private pollId: string | undefined
  private controller: AbortController | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private sendTimer: NodeJS.Timeout | undefined
  private pingTimer: NodeJS.Timeout | undefined
  private opened = false

  constructor(url: string, private readonly opts: { cooldown: number; sendBuffer: number; pingInterval: number }) {
    this.url = url
  }

  displayName(): string {
    return 'LongPolling'
  }

  setURL(url: string): void {
    this.url = url
  }

  setParam(key: string, value: string): void {
    if (value === '') this.params.delete(key)
    else this.params.set(key, value)
  }

  setToken(value: string, param = 'jid'): void {
    this.setParam(param, value)
  }

  on<E extends keyof Events>(event: E, callback: Events[E]): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) this.listeners.set(event, (set = new Set()))
    set.add(callback)
    return () => set.delete(callback)
  }

  once<E extends keyof Events>(event: E, callback: Events[E]): () => void {
    const off = this.on(event, ((...args: unknown[]) => {
      off()
      ;(callback as (...args: unknown[]) => void)(...args)
    }) as Events[E])
    return off
  }

  async open(): Promise<void> {
    const url = new URL(this.url)
    for (const [key, value] of this.params) url.searchParams.set(key, value)
    const response = await fetch(url, { method: 'POST' })
    if (!response.ok) throw new Error(`Unexpected status code: ${response.status}`)
    this.opened = true
    this.pollId = response.headers.get('x-anycable-poll-id') ?? undefined
    this.emit('open')
    this.emitLines(await response.text())
    this.schedulePoll()
    this.pingTimer = setInterval(() => this.emit('data', JSON.stringify({ type: 'ping', source: 'long polling transport emulation' })), this.opts.pingInterval)
  }

  send(data: string): void {
    if (!this.opened) throw new Error('No connection')
    this.buffer.push(data)
    this.sendTimer ??= setTimeout(() => {
      this.sendTimer = undefined
      // AnyCable's transport: a flush aborts the held poll and polls at once with the commands.
      this.controller?.abort()
      void this.poll()
    }, this.opts.sendBuffer)
  }

  async close(): Promise<void> {
    if (!this.opened) return
    this.opened = false
    this.stop()
    this.emit('close')
  }

  private stop(): void {
    clearTimeout(this.pollTimer)
    clearTimeout(this.sendTimer)
    clearInterval(this.pingTimer)
    this.sendTimer = undefined
    this.controller?.abort()
  }

  private schedulePoll(): void {
    clearTimeout(this.pollTimer)
    this.pollTimer = setTimeout(() => void this.poll(), this.opts.cooldown)
  }

  private async poll(): Promise<void> {
    if (!this.opened) return
    clearTimeout(this.pollTimer)
    const body = this.buffer.length > 0 ? this.buffer.join('\n') : undefined
    this.buffer = []
    const controller = new AbortController()
    this.controller = controller
    try {
      const init: RequestInit = { method: 'POST', headers: { 'X-Anycable-Poll-ID': this.pollId ?? '' }, signal: controller.signal }
      if (body !== undefined) init.body = body
      const response = await fetch(this.url, init)
      if (!response.ok) throw new Error(`Unexpected status code: ${response.status}`)
      const text = await response.text()
      if (this.controller === controller) this.controller = undefined
      this.emitLines(text)
      if (this.opened && this.controller === undefined) this.schedulePoll()
    } catch (error) {
      // An abort is the transport's own (a flush, or close): the poll carrying the commands replaces it.
      if (controller.signal.aborted || !this.opened) return
      this.opened = false
      this.stop()
      this.emit('close', error as Error)
    }
  }

  private emitLines(text: string): void {
    for (const line of text.split('\n')) if (line !== '') this.emit('data', line)
  }

  private emit(event: keyof Events, ...args: unknown[]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) (listener as (...args: unknown[]) => void)(...args)
  }
}
