import { identifierOf } from './identifier.js'
import { longPollTransport } from './long-poll-transport.js'
import { sseTransport } from './sse-transport.js'
import type { Transport, TransportEnd, TransportHost, TransportSettings } from './transport.js'
import type { Command, FetchCredentials, Position, PresenceEvent, ServerMessage, SubscriptionCallbacks, SubscriptionTarget, TransportName } from './types.js'

export interface ConsumerOptions {
  /** The server's base URL, e.g. `https://example.com` (paths below are appended). */
  url: string
  /** Transports in order of preference. Default `['sse', 'long-poll']`. */
  transports?: TransportName[]
  /** Sent with every request (e.g. `Authorization`). */
  headers?: Record<string, string>
  /** fetch credentials. Default `same-origin`; `include` for cookies across origins. */
  credentials?: FetchCredentials
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
  /**
   * A token for the server's `authenticate` hook, sent as AnyCable's `?jid=` (or in `tokenHeader`). A function
   * (it may return a promise) is asked before the first connect, and once more when the server answers 401 or
   * `disconnect` with reason `token_expired`; a second refusal in a row closes the consumer.
   */
  token?: string | (() => string | Promise<string>)
  /** Sends the token in this header instead of the `jid` query parameter (e.g. `X-JID`, `Authorization`). */
  tokenHeader?: string
  /**
   * ms a hidden page (`visibilitychange`) keeps its connection; then it disconnects and resumes from its
   * positions when shown again. Default: never pauses.
   */
  pauseWhenHidden?: number
}

/** Where a subscription starts: positions per stream, and `since` (ms) for the streams it has not heard from. */
export interface Resume {
  since?: number | undefined
  streams?: Record<string, Position>
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
  /** The token in use; `undefined` while a token function has to be asked. */
  private token: string | undefined
  private asking = false
  /** A token was refreshed since the last welcome: the next refusal is final. */
  private refreshed = false
  private paused = false
  private pauseTimer: ReturnType<typeof setTimeout> | undefined
  private readonly unlisten: Array<() => void> = []

  constructor(options: ConsumerOptions) {
    this.options = options
    this.transports = options.transports ?? ['sse', 'long-poll']
    if (this.transports.length === 0) throw new TypeError('@rt/client: transports must not be empty')
    if (typeof options.token === 'string') this.token = options.token
    this.settings = {
      url: options.url.replace(/\/$/, ''),
      query: '',
      ssePath: options.ssePath ?? '/events',
      longPollPath: options.longPollPath ?? '/lp',
      headers: options.headers ?? {},
      credentials: options.credentials ?? 'same-origin',
      fetch: options.fetch ?? ((input, init) => fetch(input, init)),
      sseWelcomeTimeout: options.sseWelcomeTimeout ?? 5000,
      staleTimeout: options.staleTimeout ?? 15_000
    }
    // Browsers: come back at once when the network or the page does, instead of waiting out a backoff.
    const listen = (target: EventTarget | undefined, event: string, handler: () => void): void => {
      if (target?.addEventListener === undefined) return
      target.addEventListener(event, handler)
      this.unlisten.push(() => target.removeEventListener(event, handler))
    }
    const page = typeof document === 'undefined' ? undefined : document
    listen(globalThis, 'online', () => this.resumeNow())
    listen(globalThis, 'offline', () => {
      if (this.current === undefined) return
      this.drop()
      this.retryLater()
    })
    if (options.pauseWhenHidden !== undefined) {
      listen(page, 'visibilitychange', () => {
        clearTimeout(this.pauseTimer)
        if (page!.visibilityState !== 'hidden') {
          if (this.paused) this.resumeNow()
          return
        }
        this.pauseTimer = setTimeout(() => {
          this.paused = true
          this.drop()
        }, options.pauseWhenHidden)
      })
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

  /**
   * Subscribes; `from` starts it at known positions (what a tab that shares its connection already saw)
   * instead of at live messages.
   */
  subscribe(target: SubscriptionTarget, callbacks: SubscriptionCallbacks = {}, from?: Resume): Subscription {
    const identifier = identifierOf(target)
    if (this.closed) throw new Error('@rt/client: the consumer is closed')
    if (this.subscriptions.has(identifier)) throw new Error(`@rt/client: already subscribed to ${identifier}`)
    const state: SubscriptionState = { identifier, callbacks, streams: new Set(), confirmedAt: undefined }
    this.subscriptions.set(identifier, state)
    if (from !== undefined) this.seed(state, from)
    if (this.current === undefined) this.connect()
    else this.current.send([this.subscribeCommand(state)])
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

  /**
   * Moves a subscription's positions back to `from` where it is behind them (same epoch) and returns whether
   * anything moved; the next (re)connect asks for history from there.
   */
  rewind(identifier: string, from: Resume): boolean {
    const state = this.subscriptions.get(identifier)
    return state !== undefined && this.seed(state, from)
  }

  /** Reconnects now from the current positions. */
  reconnect(): void {
    this.attempts = 0
    this.reconnectNow()
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
    clearTimeout(this.pauseTimer)
    for (const unlisten of this.unlisten.splice(0)) unlisten()
    this.drop()
  }

  private seed(state: SubscriptionState, from: Resume): boolean {
    let moved = false
    if (from.since !== undefined && !(state.confirmedAt! <= from.since)) {
      state.confirmedAt = from.since
      moved = true
    }
    for (const [stream, position] of Object.entries(from.streams ?? {})) {
      const known = this.streamPositions.get(stream)
      state.streams.add(stream)
      if (known !== undefined && !(known.epoch === position.epoch && position.offset < known.offset)) continue
      this.streamPositions.set(stream, position)
      state.confirmedAt ??= Date.now()
      moved = true
    }
    return moved
  }

  /** The network or the page is back: reconnect now, with a fresh backoff. */
  private resumeNow(): void {
    this.paused = false
    this.attempts = 0
    if (!this.connected) this.reconnectNow()
  }

  private retryLater(retry = 0): void {
    const min = this.options.backoff?.min ?? 500
    const max = this.options.backoff?.max ?? 30_000
    const delay = Math.min(max, Math.max(retry, min * 2 ** this.attempts++))
    this.timer = setTimeout(() => this.connect(), delay / 2 + Math.random() * (delay / 2))
  }

  /** Asks the token function again after a refusal; false when it was just asked (the refusal is final). */
  private refreshToken(): boolean {
    if (typeof this.options.token !== 'function' || this.refreshed) return false
    this.refreshed = true
    this.token = undefined
    return true
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
    clearTimeout(this.timer)
    if (this.closed || this.paused || this.current !== undefined || this.asking) return
    const { token, tokenHeader } = this.options
    if (typeof token === 'function' && this.token === undefined) {
      this.asking = true
      Promise.resolve().then(token).then((value) => {
        this.asking = false
        this.token = value
        this.connect()
      }, () => {
        this.asking = false
        this.close()
      })
      return
    }
    if (this.token !== undefined) {
      if (tokenHeader === undefined) this.settings.query = `?jid=${encodeURIComponent(this.token)}`
      else this.settings.headers = { ...this.options.headers, [tokenHeader]: this.token }
    }
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
        this.refreshed = false
        this.options.onTransport?.(this.current?.name)
        return
      case 'disconnect':
        // Refused (AnyCable's `unauthorized`, as in a 401) or expired: a token function gets one more try.
        if ((message.reason === 'token_expired' || message.reason === 'unauthorized') && this.refreshToken()) this.reconnectNow()
        else if (message.reconnect === false) this.close()
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
    if (end.fatal) return this.refreshToken() ? this.connect() : this.close()
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
    this.retryLater(end.retry)
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
