import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Channel, ChannelContext, ChannelSource, Hub, Session, SessionState } from '@rt/core'
import type { ResolvedOptions } from './options.js'
import { UpstreamConnection } from './upstream.js'

/** What a session stores about its upstream connection (in `SessionState.sourceState`). */
export interface UpstreamState {
  /** The upstream connection's id: names its streams and its holder record. */
  upstream: string
  /** The allow-listed headers of the request that opened the session, re-sent when the socket is re-opened elsewhere. */
  headers: Record<string, string>
}

/** The stream of one upstream subscription of one session: its messages get positions in rt's broker. */
export const upstreamStream = (upstream: string, identifier: string): string => `$rt:ac:${upstream}:s:${identifier}`
const commandStream = (upstream: string): string => `$rt:ac:${upstream}:cmd`
const replyStream = (upstream: string): string => `$rt:ac:${upstream}:reply`
/** The session-store key of the record naming the process that holds an upstream socket. */
const holderKey = (upstream: string): string => `$rt:ac-holder:${upstream}`

type Command =
  | { op: 'subscribe' | 'unsubscribe'; identifier: string; sid: string }
  | { op: 'perform'; identifier: string; data: string }
  | { op: 'close'; sid: string }

interface RoutedCommand { command: Command; reply: string; from: string }
interface RoutedReply { reply: string; ok: boolean }

/** An upstream socket this process holds, with the sessions it serves here. */
interface Held {
  connection: UpstreamConnection
  /** Live sessions attached on this process (ended here when the upstream ends the connection). */
  live: Set<Session>
  /** Sessions (by sid) this socket serves; it closes when the last of them closed. */
  sids: Set<string>
  /** identifier → sids subscribed to it: unsubscribed upstream when the last one leaves (an old and a resumed session may overlap). */
  subscribers: Map<string, Set<string>>
  stopCommands: () => void
  renew: NodeJS.Timeout
}

/** Matches an upstream stream name in a resume id, raw or percent-encoded. */
const RESUMED_STREAM = /\$rt:ac:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):s:/

/** The upstream id named by the request's resume position (`Last-Event-ID` or `?last_event_id=`), if any. */
function resumedUpstream(request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id']
  const query = (request.query as Record<string, unknown> | undefined)?.last_event_id
  for (const id of [header, query]) {
    if (typeof id !== 'string') continue
    let decoded = id
    try {
      decoded = decodeURIComponent(id)
    } catch {
      continue
    }
    const match = RESUMED_STREAM.exec(decoded)
    if (match !== null) return match[1]
  }
  return undefined
}

function subscribersOf(held: Held, identifier: string): Set<string> {
  let subscribers = held.subscribers.get(identifier)
  if (subscribers === undefined) held.subscribers.set(identifier, (subscribers = new Set()))
  return subscribers
}

function readState(state: Record<string, unknown> | undefined): UpstreamState | undefined {
  const upstream = state?.upstream
  const headers = state?.headers
  if (typeof upstream !== 'string' || typeof headers !== 'object' || headers === null) return undefined
  return { upstream, headers: headers as Record<string, string> }
}

/**
 * `@rt/core`'s channel source for an upstream Action Cable server: every
 * channel that is not a JS channel goes upstream, over one WebSocket per rt
 * session, held by one process at a time (named in the session store) and
 * reached by the others through the broker.
 */
export class ActionCableBridge implements ChannelSource {
  private readonly held = new Map<string, Held>()
  private readonly opening = new Map<string, Promise<Held | undefined>>()
  private readonly waiting = new Map<string, (ok: boolean) => void>()
  private readonly processId = randomUUID()
  private readonly stopReplies: () => void
  private readonly channelObject: Channel
  private shutDown = false

  constructor(
    private readonly hub: Hub,
    private readonly options: ResolvedOptions,
    private readonly log: Pick<FastifyBaseLogger, 'warn' | 'error'>,
    /** Told the number of held sockets whenever it changes (a metric). */
    private readonly onSocketCount: (count: number) => void = () => undefined
  ) {
    this.stopReplies = hub.broker.subscribe(replyStream(this.processId), (message) => {
      const { reply, ok } = message.data as RoutedReply
      this.waiting.get(reply)?.(ok)
    })
    this.channelObject = {
      subscribed: (ctx) => this.subscribed(ctx),
      unsubscribed: (ctx) => this.unsubscribed(ctx),
      perform: (ctx, _action, data) => this.perform(ctx, data)
    }
  }

  /** Upstream sockets this process holds. */
  get socketCount(): number {
    return this.held.size
  }

  channel(): Channel {
    return this.channelObject
  }

  async open(request: FastifyRequest, sid: string): Promise<Record<string, unknown> | undefined> {
    if (this.shutDown) return undefined
    const headers: Record<string, string> = {}
    for (const name of this.options.forwardHeaders) {
      const value = request.headers[name]
      if (typeof value === 'string') headers[name] = value
      else if (Array.isArray(value)) headers[name] = value.join(name === 'cookie' ? '; ' : ', ')
    }
    // A client resuming from an event id of an upstream stream (SSE `Last-Event-ID`) continues that stream.
    const resumed = resumedUpstream(request)
    if (resumed !== undefined) await this.release(resumed)
    const state: UpstreamState = { upstream: resumed ?? randomUUID(), headers }
    const held = await this.hold(state, false)
    if (held === undefined) return undefined
    held.sids.add(sid)
    return { ...state }
  }

  async attached(session: Session): Promise<void> {
    const state = readState(session.state.sourceState)
    if (state === undefined || this.shutDown) return
    let held = this.held.get(state.upstream)
    if (held === undefined && !(await this.holderAlive(state.upstream))) {
      held = await this.hold(state, true, session.state)
      if (held === undefined) {
        // The upstream refuses this session now (its cookie expired, say): end it as the upstream would.
        await this.endSession(session, 'unauthorized')
        return
      }
    }
    if (held === undefined) return
    held.sids.add(session.sid)
    if (session.mode === 'live') held.live.add(session)
  }

  async closed(session: Session): Promise<void> {
    const state = readState(session.state.sourceState)
    if (state === undefined) return
    this.held.get(state.upstream)?.live.delete(session)
    await this.route(state.upstream, { op: 'close', sid: session.sid })
  }

  /** Closes every upstream socket of this process (`fastify.close()`). */
  async close(): Promise<void> {
    this.shutDown = true
    this.stopReplies()
    for (const resolve of this.waiting.values()) resolve(false)
    await Promise.all([...this.opening.values()])
    await Promise.all([...this.held.keys()].map((upstream) => this.release(upstream)))
  }

  private async subscribed(ctx: ChannelContext): Promise<void> {
    const state = readState(ctx.sourceState)
    if (state === undefined) return ctx.reject()
    const stream = upstreamStream(state.upstream, ctx.identifier)
    // Read before the subscribe goes upstream: what the upstream sends right behind its confirmation (while the
    // answer travels back, through the broker from another process) is after this position, so it is delivered.
    const from = await this.hub.broker.position(stream)
    if (!(await this.route(state.upstream, { op: 'subscribe', identifier: ctx.identifier, sid: ctx.sid }))) return ctx.reject()
    ctx.streamFrom(stream, { from })
  }

  private async unsubscribed(ctx: ChannelContext): Promise<void> {
    const state = readState(ctx.sourceState)
    if (state !== undefined) await this.route(state.upstream, { op: 'unsubscribe', identifier: ctx.identifier, sid: ctx.sid })
  }

  private async perform(ctx: ChannelContext, data: Record<string, unknown>): Promise<void> {
    const state = readState(ctx.sourceState)
    if (state === undefined || !(await this.route(state.upstream, { op: 'perform', identifier: ctx.identifier, data: JSON.stringify(data) }))) {
      throw new Error('the upstream subscription is not open')
    }
  }

  /** Runs a command where the upstream socket is held: here, or through the broker on its holder (taking over when that one is gone). */
  private async route(upstream: string, command: Command): Promise<boolean> {
    const local = this.held.get(upstream)
    if (local !== undefined) return this.execute(upstream, local, command)
    if (this.shutDown || !(await this.holderAlive(upstream))) return false
    const reply = randomUUID()
    const answer = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => settle(false), this.options.commandTimeout)
      const settle = (ok: boolean): void => {
        clearTimeout(timer)
        this.waiting.delete(reply)
        resolve(ok)
      }
      this.waiting.set(reply, settle)
    })
    const routed: RoutedCommand = { command, reply, from: this.processId }
    await this.hub.broker.publish(commandStream(upstream), routed, { transient: true })
    return answer
  }

  private async execute(upstream: string, held: Held, command: Command): Promise<boolean> {
    try {
      switch (command.op) {
        case 'subscribe': {
          const confirmed = await held.connection.subscribe(command.identifier)
          if (confirmed) subscribersOf(held, command.identifier).add(command.sid)
          return confirmed
        }
        case 'unsubscribe': {
          const subscribers = subscribersOf(held, command.identifier)
          subscribers.delete(command.sid)
          if (subscribers.size === 0) {
            held.subscribers.delete(command.identifier)
            await held.connection.unsubscribe(command.identifier)
          }
          return true
        }
        case 'perform': return await held.connection.perform(command.identifier, command.data)
        case 'close':
          held.sids.delete(command.sid)
          if (held.sids.size === 0) await this.release(upstream)
          return true
      }
    } catch {
      return false
    }
  }

  /**
   * Opens an upstream socket for a session and becomes its holder. With
   * `takeOver`, the socket replaces one that was lost (its process died, or
   * the session was restored): the session's upstream subscriptions are sent
   * again and each subscriber is told that messages may have been missed.
   */
  private hold(state: UpstreamState, takeOver: boolean, session?: SessionState): Promise<Held | undefined> {
    let opening = this.opening.get(state.upstream)
    if (opening === undefined) {
      opening = this.openHeld(state, takeOver, session).finally(() => this.opening.delete(state.upstream))
      this.opening.set(state.upstream, opening)
    }
    return opening
  }

  private async openHeld(state: UpstreamState, takeOver: boolean, session?: SessionState): Promise<Held | undefined> {
    const { upstream } = state
    const connection = new UpstreamConnection(this.options, state.headers, {
      message: (identifier, message) => void this.publish(upstream, identifier, message),
      dropped: (identifiers, reason) => {
        for (const identifier of identifiers) void this.notice(upstream, identifier, 'reject_history', { reason })
      },
      resubscribed: (identifier, confirmed) => {
        void this.notice(upstream, identifier, confirmed ? 'confirm_subscription' : 'reject_subscription', { reason: 'upstream_reconnected' })
      },
      ended: ({ reason }) => void this.ended(upstream, reason)
    })
    const outcome = await connection.open()
    if (outcome !== 'welcome' || this.shutDown) {
      connection.close()
      return undefined
    }
    const held: Held = {
      connection,
      live: new Set(),
      sids: new Set(),
      subscribers: new Map(),
      stopCommands: this.hub.broker.subscribe(commandStream(upstream), (message) => void this.remote(upstream, message.data as RoutedCommand)),
      renew: setInterval(() => void this.claim(upstream), Math.max(10, Math.floor(this.options.holderTtl / 3)))
    }
    held.renew.unref()
    this.held.set(upstream, held)
    this.onSocketCount(this.held.size)
    await this.claim(upstream)
    if (takeOver && session !== undefined) {
      for (const [identifier, subscription] of Object.entries(session.subscriptions)) {
        if (this.hub.channel(subscription.channel) !== this.channelObject) continue
        const stream = upstreamStream(upstream, identifier)
        if (!subscription.streams.includes(stream)) continue
        // Action Cable keeps nothing for a subscriber that was away: say so before anything newer arrives.
        await this.notice(upstream, identifier, 'reject_history', { reason: 'upstream_reopened' })
        const confirmed = await connection.subscribe(identifier)
        if (confirmed) subscribersOf(held, identifier).add(session.sid)
        await this.notice(upstream, identifier, confirmed ? 'confirm_subscription' : 'reject_subscription', { reason: 'upstream_reopened' })
      }
    }
    return held
  }

  private async remote(upstream: string, routed: RoutedCommand): Promise<void> {
    const held = this.held.get(upstream)
    if (held === undefined) return
    const ok = await this.execute(upstream, held, routed.command)
    const reply: RoutedReply = { reply: routed.reply, ok }
    await this.hub.broker.publish(replyStream(routed.from), reply, { transient: true }).catch((error: unknown) => {
      this.log.warn({ err: error }, '@rt/action-cable: answering a routed command failed')
    })
  }

  /** Closes this process's socket of `upstream` and gives up its holder record. */
  private async release(upstream: string): Promise<void> {
    const held = this.held.get(upstream)
    if (held === undefined) return
    this.held.delete(upstream)
    this.onSocketCount(this.held.size)
    clearInterval(held.renew)
    held.stopCommands()
    held.connection.close()
    await this.hub.store.delete(holderKey(upstream)).catch(() => undefined)
  }

  /** The upstream ended the connection for good: end every rt session it served, with the upstream's reason. */
  private async ended(upstream: string, reason: string): Promise<void> {
    const held = this.held.get(upstream)
    if (held === undefined) return
    const live = [...held.live]
    const sids = [...held.sids]
    await this.release(upstream)
    await Promise.all(live.map((session) => this.endSession(session, reason)))
    // Pull sessions have no connection to end: forgetting them makes their next request a 401.
    await Promise.all(sids.map((sid) => this.hub.store.delete(sid).catch(() => undefined)))
  }

  private async endSession(session: Session, reason: string): Promise<void> {
    if (session.mode === 'live') {
      if (!session.isClosed) await session.disconnect(reason, false)
    } else {
      await this.hub.store.delete(session.sid).catch(() => undefined)
    }
  }

  private async holderAlive(upstream: string): Promise<boolean> {
    if (this.held.has(upstream)) return true
    const record = await this.hub.store.get(holderKey(upstream))
    return record !== undefined
  }

  /** Writes (or renews) this process's holder record of `upstream`. */
  private async claim(upstream: string): Promise<void> {
    const record: SessionState = {
      sid: holderKey(upstream),
      identity: { holder: this.processId },
      subscriptions: {},
      positions: {},
      outbox: [],
      transport: {},
      lease: 0,
      createdAt: Date.now()
    }
    try {
      await this.hub.store.create(record, this.options.holderTtl)
    } catch (error) {
      this.log.warn({ err: error }, '@rt/action-cable: renewing the holder record failed')
    }
  }

  private async publish(upstream: string, identifier: string, message: unknown): Promise<void> {
    try {
      await this.hub.broker.publish(upstreamStream(upstream, identifier), message)
    } catch (error) {
      this.log.error({ err: error }, '@rt/action-cable: publishing an upstream message failed')
    }
  }

  /** A notice in a subscription's stream (so in order with its messages): `{type, identifier, message: {reason}}`. */
  private async notice(upstream: string, identifier: string, type: string, message: { reason: string }): Promise<void> {
    try {
      await this.hub.broker.publish(upstreamStream(upstream, identifier), message, { meta: { broadcast_type: type } })
    } catch (error) {
      this.log.error({ err: error }, '@rt/action-cable: publishing an upstream notice failed')
    }
  }
}
