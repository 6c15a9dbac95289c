import { randomBytes } from 'node:crypto'
import type { StreamListener, StreamMessage, StreamPosition } from '@rt/core'
import { Cluster } from 'ioredis'
import { duplicate, watch } from './connection.js'
import type { RedisClient, RedisLogger } from './options.js'

const noop = (): void => undefined

/**
 * How long a catch-up waits for its marker. On one server the marker is lost
 * only with the connection (which rt sees close); a Cluster's subscriber
 * connection moves to another node on its own, without telling, so a marker can
 * be lost on a connection that looks healthy: the read then counts as
 * unmarked and is made again.
 */
const MARKER_TIMEOUT = 2000

/** Statuses of a connection that is down (ioredis retries it). */
const DOWN = new Set(['reconnecting', 'close', 'end'])

/** A message as it arrives on the pub/sub channel. */
export interface LiveMessage {
  message: StreamMessage
  /** For a transient message (offset 0): the stream's last offset when it was published, i.e. its place in the order. */
  after: number
}

/** What a catch-up read returns: the stream's epoch (`''` when it does not exist) and the messages after the position. */
export interface CatchUpRead {
  epoch: string
  /** After the position, or from the start of the current epoch when the position is from another. */
  messages: StreamMessage[]
}

/** A catch-up read in flight: its marker shows where in the live order the read happened. */
interface Marker {
  token: string
  /** How many held messages had arrived when the marker did; `undefined` until then (or if it never came). */
  at: number | undefined
  resolve: () => void
  /** Settles when the marker arrived, the connection closed, or after `ms`. */
  within: (ms: number) => Promise<void>
}

/** One stream this process listens to. */
interface Channel {
  readonly stream: string
  /** The Redis pub/sub channel. */
  readonly name: string
  readonly listeners: Set<StreamListener>
  /** Position of the last stored message delivered (at first: the stream's position when the first listener came). */
  last: StreamPosition | undefined
  /** The first listener's start position, being read. */
  start: Promise<StreamPosition> | undefined
  /** The SUBSCRIBE in flight, if any. */
  activation: Promise<unknown> | undefined
  /** Settles when the first SUBSCRIBE is acknowledged (or the subscriber connection fails); then cleared. */
  activating: Promise<void> | undefined
  /** Live messages held back while history is read; `undefined` while delivering live. */
  held: LiveMessage[] | undefined
  /** The catch-up read in flight. */
  marker: Marker | undefined
  syncing: boolean
  /** Another catch-up was asked for while one was running (the subscriber reconnected meanwhile). */
  again: boolean
  failures: number
  retry: NodeJS.Timeout | undefined
}

export interface FanOutOptions {
  /** The command client; the subscriber connection is its duplicate. */
  client: RedisClient
  /** The stream's position now (where a new subscription starts). */
  position: (stream: string) => Promise<StreamPosition>
  /**
   * Reads the history after `from` and, in the same atomic step, publishes
   * `{"m":"<marker>"}` on `channel`.
   */
  read: (stream: string, from: StreamPosition, channel: string, marker: string) => Promise<CatchUpRead>
  channelName: (stream: string) => string
  decode: (stream: string, payload: string) => LiveMessage
  logger: RedisLogger
  connectionName: string
  /** Sharded pub/sub (SSUBSCRIBE, `smessage`) on a Cluster instead of SUBSCRIBE. */
  sharded?: boolean
}

/**
 * Live delivery for one process: ONE subscriber connection (a duplicate of the
 * command client, opened on the first subscription), SUBSCRIBE per stream,
 * local listeners multiplexed on it, UNSUBSCRIBE when the last local listener
 * leaves.
 *
 * Each stream is delivered in offset order with nothing lost and nothing
 * repeated. A new stream starts at its position when the first listener
 * subscribed; whenever live messages may have been missed (before the SUBSCRIBE
 * took effect, while the connection was down, or when an offset is skipped),
 * live messages are held back, the history after the last delivered position is
 * read, and both are merged in publication order. Transient messages carry
 * their place in that order, so they are merged too; those published while the
 * connection was down are gone (they were never stored).
 */
export class FanOut {
  private subscriber: RedisClient | undefined
  private unwatch: (() => void) | undefined
  private subscriberWasReady = false
  private interruption: { promise: Promise<void>; resolve: () => void } | undefined
  private readonly channels = new Map<string, Channel>()
  private closed = false
  private readonly id = randomBytes(6).toString('base64url')
  private reads = 0

  constructor(private readonly options: FanOutOptions) {}

  /** Number of streams with local listeners (each is one SUBSCRIBE on the shared connection). */
  get size(): number {
    return this.channels.size
  }

  subscribe(stream: string, listener: StreamListener): () => void {
    const name = this.options.channelName(stream)
    let channel = this.channels.get(name)
    if (channel === undefined) {
      const start = this.options.position(stream)
      start.catch(() => undefined)
      channel = {
        stream, name, listeners: new Set(), last: undefined, start, activation: undefined, activating: undefined,
        held: [], marker: undefined, syncing: false, again: false, failures: 0, retry: undefined
      }
      const activation = this.activate(channel)
      channel.activating = this.activatingOf(channel, activation)
      this.channels.set(name, channel)
      this.sync(channel)
    }
    const current = channel
    // Wrapped so that one function subscribed twice is removed once per unsubscribe.
    const entry: StreamListener = (message) => listener(message)
    current.listeners.add(entry)
    return () => {
      current.listeners.delete(entry)
      if (current.listeners.size === 0 && this.channels.get(name) === current) this.drop(current)
    }
  }

  /**
   * While this process is still subscribing to `stream` for its first listener,
   * the promise that settles once it has (or the subscriber connection failed).
   * A publish from this process waits for it, so a message published after
   * `subscribe()` returned reaches that listener live, transient ones included.
   */
  activating(stream: string): Promise<void> | undefined {
    const channel = this.channels.get(this.options.channelName(stream))
    // While the subscriber connection is down, waiting would hold the publish until it is back.
    if (channel === undefined || DOWN.has(this.subscriber!.status)) return undefined
    return channel.activating
  }

  async close(): Promise<void> {
    this.closed = true
    for (const channel of this.channels.values()) {
      clearTimeout(channel.retry)
      channel.listeners.clear()
      channel.marker?.resolve()
    }
    this.channels.clear()
    this.unwatch?.()
    this.subscriber?.disconnect()
  }

  private connection(): RedisClient {
    if (this.subscriber !== undefined) return this.subscriber
    const subscriber = duplicate(this.options.client, `${this.options.connectionName}:subscriber`, this.options.sharded)
    subscriber.on(this.options.sharded === true ? 'smessage' : 'message', (name: string, payload: string) => this.receive(name, payload))
    // A Cluster moves its subscriber connection to another node by itself when a node goes; what was
    // published meanwhile is read from history, as after a reconnect.
    if (subscriber instanceof Cluster) subscriber.on('-node', () => this.resyncAll())
    this.unwatch = watch(subscriber, 'subscriber', this.options.logger, {
      ready: () => {
        if (this.subscriberWasReady) this.resyncAll()
        this.subscriberWasReady = true
      },
      close: () => {
        this.interruption?.resolve()
        this.interruption = undefined
        // Whatever is published until the next SUBSCRIBE takes effect is read from history;
        // a marker still on its way is lost with the connection.
        for (const channel of this.channels.values()) {
          channel.held ??= []
          channel.marker?.resolve()
        }
      }
    })
    this.subscriber = subscriber
    return subscriber
  }

  private resyncAll(): void {
    for (const channel of this.channels.values()) this.sync(channel)
  }

  private activate(channel: Channel): Promise<unknown> {
    const subscriber = this.connection()
    const activation = this.options.sharded === true ? subscriber.ssubscribe(channel.name) : subscriber.subscribe(channel.name)
    activation.catch(() => undefined)
    channel.activation = activation
    return activation
  }

  /** Settles when the SUBSCRIBE is acknowledged or the subscriber connection closes, whichever comes first. */
  private activatingOf(channel: Channel, activation: Promise<unknown>): Promise<void> {
    const settled: Promise<void> = Promise.race([activation.then(noop, noop), this.interrupted()]).then(() => {
      if (channel.activating === settled) channel.activating = undefined
    })
    return settled
  }

  /** A promise resolved the next time the subscriber connection closes (one for all waiters). */
  private interrupted(): Promise<void> {
    if (this.interruption === undefined) {
      let resolve = noop
      const promise = new Promise<void>((done) => (resolve = done))
      this.interruption = { promise, resolve }
    }
    return this.interruption.promise
  }

  private drop(channel: Channel): void {
    this.channels.delete(channel.name)
    clearTimeout(channel.retry)
    // Its marker would be ignored now: let a catch-up in flight finish.
    channel.marker?.resolve()
    const subscriber = this.connection()
    const leaving = this.options.sharded === true ? subscriber.sunsubscribe(channel.name) : subscriber.unsubscribe(channel.name)
    leaving.catch((err: unknown) => {
      // The connection dropped before answering: ioredis resubscribes only what it still tracks.
      if (!this.closed) this.options.logger.warn({ err }, `@rt/redis: unsubscribing from ${channel.stream} failed`)
    })
  }

  private current(channel: Channel): boolean {
    return !this.closed && this.channels.get(channel.name) === channel
  }

  private receive(name: string, payload: string): void {
    const channel = this.channels.get(name)
    if (channel === undefined) return
    if (payload.startsWith('{"m":')) {
      // A catch-up marker: ours tells which held messages the read covers; other nodes' are ignored.
      const marker = channel.marker
      if (marker !== undefined && payload === `{"m":"${marker.token}"}`) {
        marker.at = channel.held!.length
        marker.resolve()
      }
      return
    }
    let live: LiveMessage
    try {
      live = this.options.decode(channel.stream, payload)
    } catch (err) {
      this.options.logger.error({ err }, `@rt/redis: dropped an undecodable message on ${channel.stream}`)
      return
    }
    if (channel.held !== undefined) {
      channel.held.push(live)
      return
    }
    if (this.skips(channel, live.message)) {
      channel.held = [live]
      this.sync(channel)
      return
    }
    this.accept(channel, live.message)
  }

  /** Whether a live message comes after a gap: an offset was skipped, something never arrived. */
  private skips(channel: Channel, message: StreamMessage): boolean {
    const last = channel.last!
    return message.offset > 0 && (message.epoch === last.epoch ? message.offset > last.offset + 1 : message.offset > 1)
  }

  private accept(channel: Channel, message: StreamMessage): void {
    if (message.offset === 0) this.deliver(channel, message)
    else this.deliverStored(channel, message)
  }

  /** Holds live messages back and catches the stream up from history (one run at a time per stream). */
  private sync(channel: Channel): void {
    channel.held ??= []
    if (channel.syncing) {
      channel.again = true
      return
    }
    clearTimeout(channel.retry)
    channel.retry = undefined
    channel.syncing = true
    void this.runSync(channel)
  }

  private async runSync(channel: Channel): Promise<void> {
    try {
      do {
        // A run starts on a current channel; a repeated one stops if the last listener left meanwhile.
        if (!this.current(channel)) return
        channel.again = false
        // SUBSCRIBE first: whatever is published after it arrives live, what came before is in history.
        const activation = channel.activation ?? this.activate(channel)
        channel.activation = undefined
        if (channel.last === undefined) {
          const start = channel.start ?? this.options.position(channel.stream)
          channel.start = undefined
          channel.last = await start
        }
        await activation
        const from = channel.last!
        const marker = this.marker(channel)
        const read = await this.options.read(channel.stream, from, channel.name, marker.token)
        await marker.within(MARKER_TIMEOUT)
        if (marker.at === undefined) channel.again = true
        channel.marker = undefined
        // (Should the last listener have left meanwhile, this delivers to nobody.)
        this.merge(channel, from, read, marker.at)
      } while (channel.again)
      channel.held = undefined
      channel.failures = 0
    } catch (err) {
      channel.marker = undefined
      if (!this.current(channel)) return
      if (channel.failures++ === 0) {
        this.options.logger.warn({ err }, `@rt/redis: catching up stream ${channel.stream} failed; retrying`)
      }
      channel.retry = setTimeout(() => {
        channel.retry = undefined
        this.sync(channel)
      }, Math.min(5000, 50 * 2 ** channel.failures))
      channel.retry.unref()
    } finally {
      channel.syncing = false
    }
  }

  private marker(channel: Channel): Marker {
    let resolve = noop
    const arrived = new Promise<void>((done) => (resolve = done))
    const within = (ms: number): Promise<void> => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<void>((done) => (timer = setTimeout(done, ms)))
      return Promise.race([arrived, timeout]).finally(() => clearTimeout(timer))
    }
    const marker: Marker = { token: `${this.id}.${this.reads++}`, at: undefined, resolve, within }
    channel.marker = marker
    return marker
  }

  /**
   * Delivers a catch-up read together with the live messages held back
   * meanwhile, in publication order. The held messages that arrived before the
   * read's marker are every live message published between the SUBSCRIBE and
   * the read, in their true order: history messages before each one's place
   * come first (those were published before the SUBSCRIBE took effect), copies
   * are dropped. Messages that arrived after the marker follow as live ones.
   * Without a marker (the connection dropped) every held message counts as covered.
   */
  private merge(channel: Channel, from: StreamPosition, read: CatchUpRead, at: number | undefined): void {
    const held = channel.held!
    const covered = held.slice(0, at)
    const later = held.slice(covered.length)
    channel.held = []
    const history = read.messages
    let next = 0
    const flush = (epoch: string, through: number): void => {
      while (next < history.length &&
        (epoch === read.epoch ? history[next]!.offset <= through : epoch !== from.epoch)) {
        this.deliverStored(channel, history[next++]!)
      }
    }
    for (const { message, after } of covered) {
      flush(message.epoch, message.offset === 0 ? after : message.offset - 1)
      this.accept(channel, message)
    }
    while (next < history.length) this.deliverStored(channel, history[next++]!)
    for (let i = 0; i < later.length; i++) {
      if (this.skips(channel, later[i]!.message)) {
        channel.held.push(...later.slice(i))
        channel.again = true
        return
      }
      this.accept(channel, later[i]!.message)
    }
  }

  private deliverStored(channel: Channel, message: StreamMessage): void {
    const last = channel.last
    if (last !== undefined && message.epoch === last.epoch && message.offset <= last.offset) return
    channel.last = { offset: message.offset, epoch: message.epoch }
    this.deliver(channel, message)
  }

  private deliver(channel: Channel, message: StreamMessage): void {
    for (const listener of [...channel.listeners]) {
      try {
        listener(message)
      } catch (err) {
        this.options.logger.error({ err }, `@rt/redis: a listener of ${channel.stream} threw`)
      }
    }
  }
}
