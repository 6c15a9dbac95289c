import WebSocket from 'ws'
import type { ResolvedOptions } from './options.js'

/** Why an upstream connection ended for good. */
export interface UpstreamEnd {
  reason: string
}

/** What an upstream connection reports to the bridge. */
export interface UpstreamEvents {
  /** A message (`{identifier, message}`) of a confirmed subscription. */
  message(identifier: string, message: unknown): void
  /** The socket dropped (or the upstream restarted): these confirmed subscriptions may miss messages until re-subscribed. */
  dropped(identifiers: string[], reason: string): void
  /** After a reconnect, a subscription was confirmed again (`true`) or rejected (`false`). */
  resubscribed(identifier: string, confirmed: boolean): void
  /** The upstream refused or ended the connection for good (`unauthorized`, `reconnect: false`). */
  ended(end: UpstreamEnd): void
}

type Outcome = 'welcome' | 'unauthorized' | 'failed'

/** Counts of live upstream resources, for leak checks. */
export const upstreamCounters = { sockets: 0, timers: 0 }

/**
 * One upstream Action Cable WebSocket, for one rt session. Commands go out one
 * at a time, in order, and a `subscribe` waits for its confirmation or
 * rejection before anything after it is sent: Action Cable runs each frame on
 * a thread pool, so an action sent before `confirm_subscription` can be lost.
 * A dropped socket is reconnected with backoff and jitter and every
 * subscription is sent again.
 */
export class UpstreamConnection {
  private socket: WebSocket | undefined
  /** Subscriptions the rt session holds upstream: `true` once confirmed. */
  private readonly subscriptions = new Map<string, boolean>()
  private readonly waiting = new Map<string, (confirmed: boolean) => void>()
  private queue: Promise<unknown> = Promise.resolve()
  private resubscribing: Promise<void> = Promise.resolve()
  private ready: Promise<Outcome> | undefined
  private reconnectTimer: NodeJS.Timeout | undefined
  private watchdog: NodeJS.Timeout | undefined
  private attempts = 0
  private welcomed = false
  private closed = false

  constructor(
    private readonly options: ResolvedOptions,
    private readonly headers: Record<string, string>,
    private readonly events: UpstreamEvents
  ) {}

  get isClosed(): boolean {
    return this.closed
  }

  /** Identifiers subscribed upstream (confirmed or re-subscribing). */
  get identifiers(): string[] {
    return [...this.subscriptions.keys()]
  }

  /** Opens the socket: `welcome`, `unauthorized` (the upstream's `connect` rejected it) or `failed`. */
  async open(): Promise<Outcome> {
    this.ready = new Promise<Outcome>((resolve) => this.connect(resolve))
    const outcome = await this.ready
    // The first handshake decides who the client is: without a welcome there is no session to keep.
    if (outcome !== 'welcome') this.close()
    return outcome
  }

  /** Subscribes and waits for the upstream's answer: `true` when confirmed. */
  subscribe(identifier: string): Promise<boolean> {
    return this.enqueue(async () => {
      if (this.subscriptions.get(identifier) === true) return true
      this.subscriptions.set(identifier, false)
      const confirmed = await this.requestSubscription(identifier)
      if (confirmed) this.subscriptions.set(identifier, true)
      else this.subscriptions.delete(identifier)
      return confirmed
    })
  }

  unsubscribe(identifier: string): Promise<void> {
    return this.enqueue(async () => {
      if (!this.subscriptions.delete(identifier)) return
      this.send({ command: 'unsubscribe', identifier })
    })
  }

  /** Sends `perform` data (a JSON string with `action`); `false` when the identifier is not subscribed. */
  perform(identifier: string, data: string): Promise<boolean> {
    return this.enqueue(async () => {
      if (this.subscriptions.get(identifier) !== true) return false
      return this.send({ command: 'message', identifier, data })
    })
  }

  /** Closes the socket for good; no reconnect, no timer left. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.clearTimers()
    for (const resolve of this.waiting.values()) resolve(false)
    this.waiting.clear()
    this.dropSocket()
  }

  private enqueue<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(async () => {
      // Sent once the socket is (again) welcomed and re-subscribed; a closed connection refuses everything.
      for (;;) {
        if (this.closed || this.ready === undefined) throw new Error('upstream connection closed')
        if (this.welcomed) {
          await this.resubscribing
          if (this.welcomed && !this.closed) break
        } else {
          await this.ready
        }
      }
      return run()
    })
    this.queue = next.catch(() => undefined)
    return next
  }

  private requestSubscription(identifier: string): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => settle(false), this.options.subscribeTimeout)
      upstreamCounters.timers++
      const settle = (confirmed: boolean): void => {
        if (this.waiting.get(identifier) !== settle) return
        this.waiting.delete(identifier)
        clearTimeout(timer)
        upstreamCounters.timers--
        resolve(confirmed)
      }
      this.waiting.set(identifier, settle)
      if (!this.send({ command: 'subscribe', identifier })) settle(false)
    })
  }

  private send(command: Record<string, string>): boolean {
    const socket = this.socket
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return false
    socket.send(JSON.stringify(command))
    return true
  }

  private connect(settle: (outcome: Outcome) => void): void {
    const socket = new WebSocket(this.options.url, ['actioncable-v1-json'], {
      headers: this.headers,
      ...(this.options.origin === undefined ? {} : { origin: this.options.origin }),
      handshakeTimeout: this.options.connectTimeout,
      perMessageDeflate: false
    })
    this.socket = socket
    upstreamCounters.sockets++
    let settled = false
    const finish = (outcome: Outcome): void => {
      if (settled) return
      settled = true
      settle(outcome)
    }
    this.armWatchdog()
    socket.on('message', (data) => {
      this.armWatchdog()
      let frame: Record<string, unknown>
      try {
        frame = JSON.parse(String(data)) as Record<string, unknown>
      } catch {
        return
      }
      if (typeof frame !== 'object' || frame === null) return
      this.frame(frame, finish)
    })
    socket.on('error', () => undefined)
    socket.on('close', () => {
      upstreamCounters.sockets--
      // A socket this connection dropped itself was already dealt with.
      if (this.socket === socket) this.lost(finish, 'upstream_disconnected')
    })
  }

  private frame(frame: Record<string, unknown>, finish: (outcome: Outcome) => void): void {
    const identifier = typeof frame.identifier === 'string' ? frame.identifier : undefined
    switch (frame.type) {
      case 'welcome':
        this.welcomed = true
        this.attempts = 0
        finish('welcome')
        this.resubscribe()
        return
      case 'ping':
        return
      case 'confirm_subscription':
      case 'reject_subscription': {
        if (identifier === undefined) return
        const settle = this.waiting.get(identifier)
        // Confirmed at once, not when the waiter runs: a message in the same chunk right behind it is the subscription's.
        if (settle !== undefined && frame.type === 'confirm_subscription' && this.subscriptions.has(identifier)) this.subscriptions.set(identifier, true)
        settle?.(frame.type === 'confirm_subscription')
        return
      }
      case 'disconnect': {
        const reason = typeof frame.reason === 'string' ? frame.reason : 'disconnected'
        if (!this.welcomed && reason === 'unauthorized') {
          finish('unauthorized')
          this.end(reason)
        } else if (frame.reconnect === false) {
          this.end(reason)
        } else {
          this.lost(finish, reason)
        }
        return
      }
    }
    if (identifier !== undefined && 'message' in frame && this.subscriptions.get(identifier) === true) {
      this.events.message(identifier, frame.message)
    }
  }

  /** The socket is gone (or going): tell the bridge once and reconnect later. */
  private lost(finish: (outcome: Outcome) => void, reason: string): void {
    if (this.closed) return
    const wasWelcomed = this.welcomed
    this.welcomed = false
    this.dropSocket()
    for (const resolve of this.waiting.values()) resolve(false)
    if (wasWelcomed) {
      const confirmed = [...this.subscriptions].filter(([, ok]) => ok).map(([identifier]) => identifier)
      for (const identifier of confirmed) this.subscriptions.set(identifier, false)
      if (confirmed.length > 0) this.events.dropped(confirmed, reason)
    }
    if (this.reconnectTimer !== undefined) return
    const base = Math.min(this.options.reconnectMaxDelay, this.options.reconnectDelay * 2 ** this.attempts)
    this.attempts++
    // Full jitter on half the delay: sessions dropped together do not come back together.
    const delay = base / 2 + Math.random() * (base / 2)
    const next = new Promise<Outcome>((resolve) => {
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = undefined
        upstreamCounters.timers--
        if (this.closed) resolve('failed')
        else this.connect(resolve)
      }, delay)
      upstreamCounters.timers++
    })
    this.ready = next
    finish('failed')
  }

  /** After a (re)connect's welcome: subscribes again to everything held before the drop, before any queued command. */
  private resubscribe(): void {
    const identifiers = [...this.subscriptions].filter(([, ok]) => !ok).map(([identifier]) => identifier)
    if (identifiers.length === 0) return
    this.resubscribing = (async () => {
      for (const identifier of identifiers) {
        if (this.closed || !this.welcomed) return
        if (!this.subscriptions.has(identifier)) continue
        const confirmed = await this.requestSubscription(identifier)
        // Dropped again meanwhile: the next welcome tries again.
        if (this.closed || !this.welcomed) return
        if (confirmed) this.subscriptions.set(identifier, true)
        else this.subscriptions.delete(identifier)
        this.events.resubscribed(identifier, confirmed)
      }
    })()
  }

  private end(reason: string): void {
    if (this.closed) return
    this.close()
    this.events.ended({ reason })
  }

  private armWatchdog(): void {
    if (this.watchdog !== undefined) {
      this.watchdog.refresh()
      return
    }
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined
      upstreamCounters.timers--
      // Silent for two ping intervals: treat as dropped (a half-open TCP connection sends no close).
      this.socket?.terminate()
    }, 2 * this.options.pingInterval)
    upstreamCounters.timers++
  }

  private clearTimers(): void {
    if (this.watchdog !== undefined) {
      clearTimeout(this.watchdog)
      this.watchdog = undefined
      upstreamCounters.timers--
    }
    if (this.reconnectTimer !== undefined) {
      clearTimeout(this.reconnectTimer)
      this.reconnectTimer = undefined
      upstreamCounters.timers--
    }
  }

  private dropSocket(): void {
    const socket = this.socket
    if (socket === undefined) return
    this.socket = undefined
    if (this.watchdog !== undefined) {
      clearTimeout(this.watchdog)
      this.watchdog = undefined
      upstreamCounters.timers--
    }
    socket.removeAllListeners('message')
    // `close` still fires (and decrements the socket count) once the TCP connection is gone.
    socket.terminate()
  }
}
