import { identifierOf } from './identifier.js'
import { longPollTransport } from './long-poll-transport.js'
import { sseTransport } from './sse-transport.js'
import type { Transport, TransportEnd, TransportHost, TransportSettings } from './transport.js'
import type { Command, Position, PresenceEvent, ServerMessage, SubscriptionCallbacks, SubscriptionTarget, TransportName } from './types.js'

export interface ConsumerOptions {
  /** The server's base URL, e.g. `https://example.com` (paths below are appended). */
  url: string
  /** Transports in order of preference. Default `['sse', 'long-poll']`. */
  transports?: TransportName[]
  /** Sent with every request (e.g. `Authorization`). */
  headers?: Record<string, string>
  /** fetch credentials. Default `same-origin`; `include` for cookies across origins. */
  credentials?: RequestCredentials
  /** Default `/events` (@rt/sse). */
  ssePath?: string
  /** Default `/lp` (@rt/long-poll). */
  longPollPath?: string
  /** ms to wait for the welcome on a new event stream before taking it as buffered by a proxy. Default 5000. */
  sseWelcomeTimeout?: number
  /** ms of silence (no ping, no message) after which a stream is taken as dead. Default 15000 (5 missed 3 s pings). */
  staleTimeout?: number
  /** ms on the fallback transport before SSE is tried again. Default 60000. */
  retrySseAfter?: number
  /** Reconnect backoff: first delay and cap, in ms. Default 500 and 30000; jittered. */
  backoff?: { min?: number; max?: number }
  /** A fetch implementation. Default the global one. */
  fetch?: typeof fetch
  /** Called when the transport in use changes (`undefined` while disconnected). */
  onTransport?(transport: TransportName | undefined): void
}

/** One subscription of a consumer. */
export interface Subscription {
  readonly identifier: string
  /** Calls a channel action (`perform('speak', { text })`). */
  perform(action: string, data?: Record<string, unknown>): void
  /** Sends `data` to every other subscriber of the stream (where the server allows whispers), not stored. */
  whisper(data: unknown): void
  /** Joins the stream's presence set as `id`; joined again after every reconnect. */
  join(id: string, info?: unknown): void
  /** Leaves the presence set. */
  leave(): void
  /** Asks for the presence set; the answer comes to the `presence` callback (`type: 'info'`). */
  presence(): void
  unsubscribe(): void
}

interface SubscriptionState {
  identifier: string
  callbacks: SubscriptionCallbacks
  /** Streams seen on this subscription. */
  streams: Set<string>
  /** ms when the server first confirmed it; history `since` for streams not seen yet. */
  confirmedAt: number | undefined
  /** What this subscription joined the presence set as, sent again with every subscribe. */
  member?: { id: string; info?: unknown }
}

/**
 * Connects to an rt server over SSE, falls back to long polling when SSE does
 * not work, and keeps one position per stream so that a reconnect or a switch
 * of transport continues exactly where it was (history by position), with
 * duplicates dropped by offset.
 */
export class Consumer {
  private readonly settings: TransportSettings
  private readonly transports: TransportName[]
  private readonly subscriptions = new Map<string, SubscriptionState>()
  private readonly streamPositions = new Map<string, Position>()
  private readonly options: ConsumerOptions
  private current: Transport | undefined
  private connected = false
  private forced: TransportName | undefined
  private sseFailed = false
  private attempts = 0
  private timer: ReturnType<typeof setTimeout> | undefined
  private sseRetry: ReturnType<typeof setTimeout> | undefined
  private closed = false

  constructor(options: ConsumerOptions) {
    this.options = options
    this.transports = options.transports ?? ['sse', 'long-poll']
    if (this.transports.length === 0) throw new TypeError('@rt/client: transports must not be empty')
    this.settings = {
      url: options.url.replace(/\/$/, ''),
      ssePath: options.ssePath ?? '/events',
      longPollPath: options.longPollPath ?? '/lp',
      headers: options.headers ?? {},
      credentials: options.credentials ?? 'same-origin',
      fetch: options.fetch ?? ((input, init) => fetch(input, init)),
      sseWelcomeTimeout: options.sseWelcomeTimeout ?? 5000,
      staleTimeout: options.staleTimeout ?? 15_000
    }
  }

  /** The transport in use, `undefined` while (re)connecting. */
  get transport(): TransportName | undefined {
    return this.connected ? this.current?.name : undefined
  }

  /** The last position received per stream. */
  get positions(): ReadonlyMap<string, Position> {
    return this.streamPositions
  }

  subscribe(target: SubscriptionTarget, callbacks: SubscriptionCallbacks = {}): Subscription {
    const identifier = identifierOf(target)
    if (this.closed) throw new Error('@rt/client: the consumer is closed')
    if (this.subscriptions.has(identifier)) throw new Error(`@rt/client: already subscribed to ${identifier}`)
    this.subscriptions.set(identifier, { identifier, callbacks, streams: new Set(), confirmedAt: undefined })
    if (this.current === undefined) this.connect()
    else this.current.send([{ command: 'subscribe', identifier }])
    const send = (command: Omit<Command, 'identifier'>): void => {
      if (this.subscriptions.has(identifier)) this.current?.send([{ ...command, identifier } as Command])
    }
    return {
      identifier,
      perform: (action, data = {}) => send({ command: 'message', data: JSON.stringify({ ...data, action }) }),
      whisper: (data) => send({ command: 'whisper', data }),
      join: (id, info) => {
        const state = this.subscriptions.get(identifier)
        if (state === undefined) return
        state.member = info === undefined ? { id } : { id, info }
        send({ command: 'join', presence: state.member })
      },
      leave: () => {
        const state = this.subscriptions.get(identifier)
        if (state?.member === undefined) return
        delete state.member
        send({ command: 'leave' })
      },
      presence: () => send({ command: 'presence' }),
      unsubscribe: () => {
        if (!this.subscriptions.delete(identifier)) return
        this.current?.send([{ command: 'unsubscribe', identifier }])
      }
    }
  }

  /** Forces a transport (`'auto'` goes back to the preference order), reconnecting now from the current positions. */
  useTransport(transport: TransportName | 'auto'): void {
    this.forced = transport === 'auto' ? undefined : transport
    this.sseFailed = false
    this.reconnectNow()
  }

  /** Closes the connection for good. */
  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    clearTimeout(this.sseRetry)
    this.drop()
  }

  private reconnectNow(): void {
    clearTimeout(this.timer)
    this.drop()
    if (!this.closed && this.subscriptions.size > 0) this.connect()
  }

  private drop(): void {
    const transport = this.current
    this.current = undefined
    transport?.close()
    this.setDisconnected()
  }

  private connect(): void {
    if (this.closed) return
    const name = this.forced ?? (this.sseFailed ? this.transports.find((t) => t !== 'sse') ?? 'sse' : this.transports[0]!)
    const host: TransportHost = {
      receive: (message) => { if (this.current === transport) this.receive(message) },
      ended: (ended, end) => { if (this.current === ended) this.ended(ended, end) }
    }
    const transport = name === 'sse' ? sseTransport(this.settings, host) : longPollTransport(this.settings, host)
    this.current = transport
    transport.open([...this.subscriptions.values()].map((subscription) => this.subscribeCommand(subscription)))
  }

  /** The subscribe command, asking for what was missed when the subscription was confirmed before. */
  private subscribeCommand(subscription: SubscriptionState): Command {
    const command: Command = { command: 'subscribe', identifier: subscription.identifier }
    if (subscription.member !== undefined) command.presence = subscription.member
    if (subscription.confirmedAt === undefined) return command
    const streams: Record<string, Position> = {}
    for (const stream of subscription.streams) {
      const position = this.streamPositions.get(stream)
      if (position !== undefined) streams[stream] = position
    }
    command.history = { since: Math.floor(subscription.confirmedAt / 1000), streams }
    return command
  }

  private receive(message: ServerMessage): void {
    const subscription = message.identifier === undefined ? undefined : this.subscriptions.get(message.identifier)
    switch (message.type) {
      case 'welcome':
        this.connected = true
        this.attempts = 0
        this.options.onTransport?.(this.current?.name)
        return
      case 'disconnect':
        if (message.reconnect === false) this.close()
        return
      case 'confirm_subscription':
        if (subscription === undefined) return
        subscription.confirmedAt ??= Date.now()
        subscription.callbacks.connected?.()
        return
      case 'reject_subscription':
        if (subscription === undefined) return
        this.subscriptions.delete(subscription.identifier)
        subscription.callbacks.rejected?.()
        return
      case 'reject_history':
        subscription?.callbacks.rejectedHistory?.()
        return
      case 'presence':
        subscription?.callbacks.presence?.(message.message as PresenceEvent)
        return
      case 'ping':
      case 'confirm_history':
        return
    }
    if (subscription === undefined) return
    const { stream_id: stream, offset, epoch } = message
    if (stream !== undefined && offset !== undefined && epoch !== undefined) {
      const known = this.streamPositions.get(stream)
      // Overlaps between history and live delivery, or between two transports, are dropped here.
      if (known !== undefined && known.epoch === epoch && offset <= known.offset) return
      this.streamPositions.set(stream, { offset, epoch })
      subscription.streams.add(stream)
    }
    subscription.callbacks.received?.(message.message, { stream, offset, epoch })
  }

  private ended(transport: Transport, end: TransportEnd): void {
    this.current = undefined
    this.setDisconnected()
    if (end.fatal) return this.close()
    const fallback = this.transports.find((t) => t !== 'sse')
    if (transport.name === 'sse' && !end.welcomed && this.forced === undefined && fallback !== undefined) {
      // SSE does not get through here: use the fallback now and try SSE again later.
      this.sseFailed = true
      clearTimeout(this.sseRetry)
      this.sseRetry = setTimeout(() => {
        this.sseFailed = false
        if (this.current?.name !== 'sse') this.reconnectNow()
      }, this.options.retrySseAfter ?? 60_000)
      return this.connect()
    }
    const min = this.options.backoff?.min ?? 500
    const max = this.options.backoff?.max ?? 30_000
    const delay = Math.min(max, Math.max(end.retry ?? 0, min * 2 ** this.attempts++))
    this.timer = setTimeout(() => this.connect(), delay / 2 + Math.random() * (delay / 2))
  }

  private setDisconnected(): void {
    if (!this.connected) return
    this.connected = false
    this.options.onTransport?.(undefined)
    for (const subscription of this.subscriptions.values()) subscription.callbacks.disconnected?.()
  }
}

/** Creates a consumer; it connects on the first `subscribe`. */
export function createConsumer(options: ConsumerOptions): Consumer {
  return new Consumer(options)
}
