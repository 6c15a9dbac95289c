import { Consumer, type ConsumerOptions, type Resume, type Subscription } from './consumer.js'
import { identifierOf } from './identifier.js'
import type { MessageMeta, Position, SubscriptionCallbacks, SubscriptionTarget, TransportName } from './types.js'

/**
 * Options of a consumer that shares one connection among the tabs of an origin. The connection itself is
 * configured as in `createConsumer`; `pauseWhenHidden` does not apply (the leader serves visible tabs too).
 */
export interface SharedConsumerOptions extends ConsumerOptions {
  /** `true`: one connection for every tab of this origin and URL; a string: one per group of that name. */
  shareAcrossTabs: true | string
  /** ms between the leading tab's heartbeats. Default 1000. */
  heartbeat?: number
  /**
   * ms without a heartbeat after which another tab takes the lead (the leader froze or was killed without
   * releasing its lock). Default 4000. A closed leader is replaced at once.
   */
  leaderTimeout?: number
}

/** A subscription of one tab. */
export interface SharedSubscription {
  readonly identifier: string
  perform(action: string, data?: Record<string, unknown>): void
  unsubscribe(): void
}

/** What a tab wants from the leader: a subscription and where it stands. */
interface Want {
  target: SubscriptionTarget
  identifier: string
  from: Resume
}

/** The messages between tabs; `tab` is the sender. */
type TabMessage =
  | { k: 'state'; tab: string; wants: Want[] }
  | { k: 'sub'; tab: string; want: Want }
  | { k: 'unsub'; tab: string; identifier: string }
  | { k: 'perform'; tab: string; identifier: string; action: string; data: Record<string, unknown> }
  | { k: 'bye'; tab: string }
  | { k: 'lead'; tab: string }
  | { k: 'beat'; tab: string; transport: TransportName | undefined }
  | { k: 'claim'; tab: string }
  | { k: 'recv'; tab: string; identifier: string; message: unknown; meta: MessageMeta }
  | { k: 'event'; tab: string; identifier: string; event: 'connected' | 'disconnected' | 'rejected' | 'rejectedHistory'; to?: string }

interface TabSubscription {
  identifier: string
  target: SubscriptionTarget
  callbacks: SubscriptionCallbacks
  streams: Set<string>
  confirmedAt: number | undefined
}

/** The leading tab's side: one Consumer for the union of every tab's subscriptions. */
class Leader {
  readonly consumer: Consumer
  /** identifier → the tabs that hold it. */
  private readonly holders = new Map<string, Set<string>>()
  private readonly subscriptions = new Map<string, Subscription>()
  private readonly confirmed = new Set<string>()
  private rewound: ReturnType<typeof setTimeout> | undefined

  constructor(options: ConsumerOptions, private readonly post: (message: TabMessage) => void) {
    this.consumer = new Consumer({
      ...options,
      pauseWhenHidden: undefined,
      onTransport: (name) => this.post({ k: 'beat', tab: '', transport: name })
    })
  }

  want(tab: string, want: Want): void {
    const { identifier } = want
    let holders = this.holders.get(identifier)
    if (holders === undefined) {
      holders = new Set()
      this.holders.set(identifier, holders)
      const event = (name: 'connected' | 'disconnected' | 'rejected' | 'rejectedHistory') => () => {
        if (name === 'connected') this.confirmed.add(identifier)
        if (name === 'rejected') this.forget(identifier)
        this.post({ k: 'event', tab: '', identifier, event: name })
      }
      this.subscriptions.set(identifier, this.consumer.subscribe(want.target, {
        received: (message, meta) => this.post({ k: 'recv', tab: '', identifier, message, meta }),
        connected: event('connected'),
        disconnected: event('disconnected'),
        rejected: event('rejected'),
        rejectedHistory: event('rejectedHistory')
      }, want.from))
    } else if (this.consumer.rewind(identifier, want.from)) {
      // A tab behind the others: reconnect once (batched) from the earliest positions; every tab drops what it has.
      clearTimeout(this.rewound)
      this.rewound = setTimeout(() => this.consumer.reconnect(), 0)
    } else if (this.confirmed.has(identifier)) {
      this.post({ k: 'event', tab: '', identifier, event: 'connected', to: tab })
    }
    holders.add(tab)
  }

  drop(tab: string, identifier: string): void {
    const holders = this.holders.get(identifier)
    if (holders === undefined || !holders.delete(tab) || holders.size > 0) return
    this.subscriptions.get(identifier)?.unsubscribe()
    this.forget(identifier)
  }

  /** A tab is gone, or sends its whole state again: it holds nothing until then. */
  dropTab(tab: string): void {
    for (const identifier of [...this.holders.keys()]) this.drop(tab, identifier)
  }

  perform(identifier: string, action: string, data: Record<string, unknown>): void {
    this.subscriptions.get(identifier)?.perform(action, data)
  }

  close(): void {
    clearTimeout(this.rewound)
    this.consumer.close()
  }

  private forget(identifier: string): void {
    this.holders.delete(identifier)
    this.subscriptions.delete(identifier)
    this.confirmed.delete(identifier)
  }
}

/**
 * A consumer whose tabs share one connection: the tabs of an origin elect a leader (Web Locks, or heartbeats
 * over BroadcastChannel where Web Locks are missing) that holds the one SSE stream or long poll for all of
 * them; the others subscribe, perform and unsubscribe through it. Positions and duplicate dropping stay per
 * tab, so when the leader goes another tab takes over from the earliest position any tab has seen, and each
 * tab still gets each message once.
 */
export class SharedConsumer {
  /** This tab's id among the tabs of its group. */
  readonly tab = Math.random().toString(36).slice(2) + Date.now().toString(36)
  private readonly subscriptions = new Map<string, TabSubscription>()
  private readonly streamPositions = new Map<string, Position>()
  private readonly channel: BroadcastChannel
  private readonly lockName: string
  private readonly heartbeat: number
  private readonly leaderTimeout: number
  private leader: Leader | undefined
  private releaseLock: (() => void) | undefined
  /** Lock requests of this tab not granted yet. */
  private queued = 0
  /** The tab that sent the last `lead` or heartbeat. */
  private knownLeader: string | undefined
  private lastBeat = Date.now()
  private claiming: ReturnType<typeof setTimeout> | undefined
  private readonly ticker: ReturnType<typeof setInterval>
  private currentTransport: TransportName | undefined
  private closed = false
  private readonly onPageHide = (): void => this.close()

  constructor(private readonly options: SharedConsumerOptions) {
    const group = options.shareAcrossTabs === true ? '' : options.shareAcrossTabs
    this.lockName = `@rt/client ${options.url} ${group}`
    this.heartbeat = options.heartbeat ?? 1000
    this.leaderTimeout = options.leaderTimeout ?? 4000
    this.channel = new BroadcastChannel(this.lockName)
    this.channel.onmessage = (event: MessageEvent<TabMessage>) => this.handle(event.data)
    if (this.locks === undefined) this.lastBeat -= this.leaderTimeout - 2 * this.heartbeat
    else this.requestLock(false)
    this.ticker = setInterval(() => this.tick(), this.heartbeat)
    globalThis.addEventListener?.('pagehide', this.onPageHide)
    this.sendState()
  }

  /** Whether this tab holds the connection. */
  get isLeader(): boolean {
    return this.leader !== undefined
  }

  /** The transport the leader uses, `undefined` while it (re)connects or no tab leads. */
  get transport(): TransportName | undefined {
    return this.currentTransport
  }

  /** The last position this tab received per stream. */
  get positions(): ReadonlyMap<string, Position> {
    return this.streamPositions
  }

  subscribe(target: SubscriptionTarget, callbacks: SubscriptionCallbacks = {}): SharedSubscription {
    const identifier = identifierOf(target)
    if (this.closed) throw new Error('@rt/client: the consumer is closed')
    if (this.subscriptions.has(identifier)) throw new Error(`@rt/client: already subscribed to ${identifier}`)
    const subscription: TabSubscription = { identifier, target, callbacks, streams: new Set(), confirmedAt: undefined }
    this.subscriptions.set(identifier, subscription)
    this.toLeader({ k: 'sub', tab: this.tab, want: this.wantOf(subscription) })
    return {
      identifier,
      perform: (action, data = {}) => {
        if (this.subscriptions.has(identifier)) this.toLeader({ k: 'perform', tab: this.tab, identifier, action, data })
      },
      unsubscribe: () => {
        if (this.subscriptions.delete(identifier)) this.toLeader({ k: 'unsub', tab: this.tab, identifier })
      }
    }
  }

  /** Leaves the group: a leader hands the connection to another tab at once. */
  close(): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.ticker)
    clearTimeout(this.claiming)
    globalThis.removeEventListener?.('pagehide', this.onPageHide)
    this.channel.postMessage({ k: 'bye', tab: this.tab } satisfies TabMessage)
    this.stepDown()
    this.channel.close()
  }

  private get locks(): LockManager | undefined {
    return (globalThis.navigator as Navigator | undefined)?.locks
  }

  /** Queues for the lock (or takes it from a frozen holder); holding it is leading. */
  private requestLock(steal: boolean): void {
    this.queued++
    this.locks!.request(this.lockName, { steal }, () => new Promise<void>((resolve) => {
      this.queued--
      // A second grant (a steal while another request was queued) or a closed tab: give it back.
      if (this.closed || this.releaseLock !== undefined) return resolve()
      this.releaseLock = resolve
      this.lead()
    })).catch(() => {
      // Stolen by a tab that saw this one silent (frozen): follow, and queue again.
      this.releaseLock = undefined
      this.stepDown()
      if (this.closed) return
      if (this.queued === 0) this.requestLock(false)
      // The new leader asked for every tab's state while this one was not listening.
      this.sendState()
    })
  }

  private lead(): void {
    if (this.leader !== undefined) return
    this.lastBeat = Date.now()
    this.leader = new Leader(this.options, (message) => {
      if (message.k === 'beat') this.setTransport(message.transport)
      const sent = { ...message, tab: this.tab }
      this.channel.postMessage(sent)
      this.handle(sent, true)
    })
    this.channel.postMessage({ k: 'lead', tab: this.tab } satisfies TabMessage)
    for (const subscription of this.subscriptions.values()) this.leader.want(this.tab, this.wantOf(subscription))
  }

  private stepDown(): void {
    const leader = this.leader
    if (leader === undefined) return
    this.leader = undefined
    leader.close()
    this.setTransport(undefined)
    this.releaseLock?.()
    this.releaseLock = undefined
  }

  private tick(): void {
    if (this.leader !== undefined) {
      this.channel.postMessage({ k: 'beat', tab: this.tab, transport: this.currentTransport } satisfies TabMessage)
      return
    }
    if (Date.now() - this.lastBeat >= this.leaderTimeout) this.claim()
  }

  /**
   * No heartbeat for too long: claim the lead, and take it (stealing the lock of a frozen leader) unless a
   * leader or a tab with a smaller id answers within a heartbeat.
   */
  private claim(): void {
    clearTimeout(this.claiming)
    this.channel.postMessage({ k: 'claim', tab: this.tab } satisfies TabMessage)
    const claimedAt = this.lastBeat = Date.now()
    this.claiming = setTimeout(() => {
      if (this.lastBeat !== claimedAt || this.closed) return
      if (this.locks === undefined) this.lead()
      else this.requestLock(true)
    }, this.heartbeat)
  }

  private setTransport(transport: TransportName | undefined): void {
    if (transport === this.currentTransport) return
    this.currentTransport = transport
    this.options.onTransport?.(transport)
  }

  private toLeader(message: TabMessage): void {
    if (this.leader !== undefined) this.handleAsLeader(message)
    else this.channel.postMessage(message)
  }

  private sendState(): void {
    this.toLeader({ k: 'state', tab: this.tab, wants: [...this.subscriptions.values()].map((s) => this.wantOf(s)) })
  }

  private wantOf(subscription: TabSubscription): Want {
    const streams: Record<string, Position> = {}
    for (const stream of subscription.streams) streams[stream] = this.streamPositions.get(stream)!
    return { target: subscription.target, identifier: subscription.identifier, from: { since: subscription.confirmedAt, streams } }
  }

  private handle(message: TabMessage, own = false): void {
    if (this.closed) return
    if (!own && this.leader !== undefined) this.handleAsLeader(message)
    switch (message.k) {
      case 'lead':
      case 'beat':
        if (own) return
        if (this.leader !== undefined) {
          // With Web Locks only the holder leads (a stolen lock rejects). Without: two claims crossed, and
          // the larger id gives way.
          if (this.locks !== undefined || this.tab < message.tab) return
          this.stepDown()
          this.sendState()
        }
        this.lastBeat = Date.now()
        this.knownLeader = message.tab
        if (message.k === 'beat') this.setTransport(message.transport)
        else this.sendState()
        return
      case 'claim':
        if (this.leader === undefined && message.tab < this.tab) this.lastBeat = Date.now()
        else if (this.leader !== undefined) this.channel.postMessage({ k: 'beat', tab: this.tab, transport: this.currentTransport } satisfies TabMessage)
        return
      case 'bye':
        // The leader left: without Web Locks, claim now; with them the lock passes on by itself.
        if (this.leader === undefined && this.locks === undefined && message.tab === this.knownLeader) this.claim()
        return
      case 'recv':
        this.lastBeat = Date.now()
        return this.receive(message.identifier, message.message, message.meta)
      case 'event':
        return this.event(message)
    }
  }

  private handleAsLeader(message: TabMessage): void {
    const leader = this.leader!
    switch (message.k) {
      case 'state':
        leader.dropTab(message.tab)
        for (const want of message.wants) leader.want(message.tab, want)
        // A new tab (or one back from a pause) learns who leads and the transport now, not at the next beat.
        this.channel.postMessage({ k: 'beat', tab: this.tab, transport: this.currentTransport } satisfies TabMessage)
        return
      case 'sub':
        return leader.want(message.tab, message.want)
      case 'unsub':
        return leader.drop(message.tab, message.identifier)
      case 'perform':
        return leader.perform(message.identifier, message.action, message.data)
      case 'bye':
        return leader.dropTab(message.tab)
    }
  }

  private receive(identifier: string, message: unknown, meta: MessageMeta): void {
    const subscription = this.subscriptions.get(identifier)
    if (subscription === undefined) return
    const { stream, offset, epoch } = meta
    if (stream !== undefined && offset !== undefined && epoch !== undefined) {
      const known = this.streamPositions.get(stream)
      if (known !== undefined && known.epoch === epoch && offset <= known.offset) return
      this.streamPositions.set(stream, { offset, epoch })
      subscription.streams.add(stream)
    }
    subscription.callbacks.received?.(message, meta)
  }

  private event(message: Extract<TabMessage, { k: 'event' }>): void {
    const subscription = this.subscriptions.get(message.identifier)
    if (subscription === undefined || (message.to !== undefined && message.to !== this.tab)) return
    if (message.event === 'connected') subscription.confirmedAt ??= Date.now()
    if (message.event === 'rejected') this.subscriptions.delete(message.identifier)
    subscription.callbacks[message.event]?.()
  }
}

/** Creates a consumer that shares one connection with the other tabs of its group. */
export function createSharedConsumer(options: SharedConsumerOptions): SharedConsumer {
  return new SharedConsumer(options)
}
