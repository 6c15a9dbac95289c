import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Channel, ChannelContext, ChannelSource, Hub, Session, SessionState } from '@rt/core'
import type { ResolvedOptions } from './options.js'
import { HolderRecords, type HolderStatus } from './holder.js'
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
/** Where a holder says that the upstream ended a connection for good, so every process ends the sessions it serves. */
const ENDED_STREAM = '$rt:ac:ended'

interface EndedNotice { upstream: string; reason: string }

/** Most pull sessions remembered per process for answering their held poll at once (see `pulled`). */
const PULLED_LIMIT = 10_000

type Command =
  | { op: 'subscribe' | 'unsubscribe'; identifier: string; sid: string }
  | { op: 'perform'; identifier: string; data: string }
  | { op: 'close' | 'attach'; sid: string }

interface RoutedCommand { command: Command; reply: string; from: string }
interface RoutedReply { reply: string; ok: boolean }

/** An upstream socket this process holds, with the sessions it serves here. */
interface Held {
  connection: UpstreamConnection
  /** The holder record's lease this process writes at (see `HolderRecords`). */
  lease: number
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
 * session, held by one process at a time (named in the session store, taken
 * over by compare-and-set) and reached by the others through the broker.
 */
export class ActionCableBridge implements ChannelSource {
  private readonly held = new Map<string, Held>()
  private readonly opening = new Map<string, Promise<Held | HolderStatus | undefined>>()
  private readonly waiting = new Map<string, (ok: boolean) => void>()
  /** Live sessions attached on this process, by upstream: ended here when their upstream ends the connection. */
  private readonly live = new Map<string, Set<Session>>()
  /**
   * The pull session (long polling) last taken up on this process, by upstream, oldest first: a poll held when
   * the upstream ends the connection is answered with the `disconnect` at once. Bounded; one that is not here
   * gets it with its next poll.
   */
  private readonly pulled = new Map<string, Session>()
  private readonly processId = randomUUID()
  private readonly holders: HolderRecords
  private readonly stopReplies: () => void
  private readonly stopEnded: () => void
  private readonly channelObject: Channel
  private shutDown = false

  constructor(
    private readonly hub: Hub,
    private readonly options: ResolvedOptions,
    private readonly log: Pick<FastifyBaseLogger, 'warn' | 'error'>,
    /** Told the number of held sockets whenever it changes (a metric). */
    private readonly onSocketCount: (count: number) => void = () => undefined
  ) {
    // Kept as long as a closed session can be restored (and at least a minute): a record read after that is written anew.
    this.holders = new HolderRecords(hub.store, this.processId, options.holderTtl, Math.max(hub.sessionsTtlMs, 60_000) + options.holderTtl)
    this.stopReplies = hub.broker.subscribe(replyStream(this.processId), (message) => {
      const { reply, ok } = message.data as RoutedReply
      this.waiting.get(reply)?.(ok)
    })
    this.stopEnded = hub.broker.subscribe(ENDED_STREAM, (message) => {
      const { upstream, reason } = message.data as EndedNotice
      void this.endLive(upstream, reason)
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
    if (resumed === undefined) {
      const state: UpstreamState = { upstream: randomUUID(), headers }
      const held = await this.hold(state)
      if (held === undefined) return undefined
      held.sids.add(sid)
      return { ...state }
    }
    // Re-opened with the new request's headers, unless the upstream ended that connection or another process holds it.
    const state: UpstreamState = { upstream: resumed, headers }
    await this.release(resumed)
    const held = await this.acquire(state)
    if (held === undefined) return undefined
    if ('kind' in held) {
      if (held.kind === 'ended') return undefined
      if (!(await this.route(resumed, { op: 'attach', sid }))) return undefined
    } else {
      held.sids.add(sid)
    }
    return { ...state }
  }

  async attached(session: Session): Promise<void> {
    const state = readState(session.state.sourceState)
    if (state === undefined || this.shutDown) return
    let held = this.held.get(state.upstream)
    if (held === undefined) {
      const acquired = await this.acquire(state, session.state)
      if (acquired === undefined) {
        // The upstream refuses this session now (its cookie expired, say): end it as the upstream would.
        await this.endSession(session, 'unauthorized')
        return
      }
      if ('kind' in acquired) {
        if (acquired.kind === 'ended') return this.endSession(session, acquired.reason)
      } else {
        held = acquired
      }
    }
    held?.sids.add(session.sid)
    if (session.mode === 'live') {
      let sessions = this.live.get(state.upstream)
      if (sessions === undefined) this.live.set(state.upstream, (sessions = new Set()))
      sessions.add(session)
    } else {
      this.pulled.delete(state.upstream)
      this.pulled.set(state.upstream, session)
      if (this.pulled.size > PULLED_LIMIT) this.pulled.delete(this.pulled.keys().next().value!)
    }
  }

  async closed(session: Session): Promise<void> {
    const state = readState(session.state.sourceState)
    if (state === undefined) return
    const sessions = this.live.get(state.upstream)
    if (sessions?.delete(session) === true && sessions.size === 0) this.live.delete(state.upstream)
    if (this.pulled.get(state.upstream)?.sid === session.sid) this.pulled.delete(state.upstream)
    await this.route(state.upstream, { op: 'close', sid: session.sid })
  }

  /** Closes every upstream socket of this process (`fastify.close()`). */
  async close(): Promise<void> {
    this.shutDown = true
    this.stopReplies()
    this.stopEnded()
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

  /** Runs a command where the upstream socket is held: here, or through the broker on its holder. */
  private async route(upstream: string, command: Command): Promise<boolean> {
    const local = this.held.get(upstream)
    if (local !== undefined) return this.execute(upstream, local, command)
    if (this.shutDown || (await this.holders.read(upstream)).kind !== 'held') return false
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
        case 'attach':
          held.sids.add(command.sid)
          return true
        case 'close':
          held.sids.delete(command.sid)
          if (held.sids.size === 0) await this.release(upstream)
          return true
      }
    } catch {
      return false
    }
  }

  /** Opens the socket of a new upstream id (nobody else knows it yet) and records this process as its holder. */
  private async hold(state: UpstreamState): Promise<Held | undefined> {
    const held = await this.once(state.upstream, () => this.openHeld(state, 'after', () => this.holders.create(state.upstream)))
    return held === undefined || 'kind' in held ? undefined : held
  }

  /**
   * The upstream socket of a known upstream id: held here already, held by
   * another process (its status), or taken over by this process — a
   * compare-and-set on the holder record, so of processes taking over at once
   * exactly one opens a socket. With the session's stored state, the socket
   * replaces one that was lost (its process died, or the session was
   * restored): the session's upstream subscriptions are sent again and each
   * subscriber is told that messages may have been missed. `undefined` when
   * the upstream refuses the connection.
   */
  private acquire(state: UpstreamState, session?: SessionState): Promise<Held | HolderStatus | undefined> {
    return this.once(state.upstream, async () => {
      const local = this.held.get(state.upstream)
      if (local !== undefined) return local
      const status = await this.holders.read(state.upstream)
      if (status.kind !== 'free') return status
      return this.openHeld(state, 'before', async () => {
        const lease = await this.holders.takeOver(state.upstream, status.lease)
        // Another process won: it holds the socket (or is opening it) now.
        return lease ?? { kind: 'held', holder: '', lease: status.lease ?? 0 }
      }, session)
    })
  }

  /** Runs one opening per upstream at a time on this process (concurrent requests of one session share it). */
  private once(upstream: string, open: () => Promise<Held | HolderStatus | undefined>): Promise<Held | HolderStatus | undefined> {
    let opening = this.opening.get(upstream)
    if (opening === undefined) {
      opening = open().finally(() => this.opening.delete(upstream))
      this.opening.set(upstream, opening)
    }
    return opening
  }

  /** Becomes the holder (`claim`: the lease, or the status of the process that won), then opens the socket. */
  private async openHeld(state: UpstreamState, when: 'before' | 'after', claim: () => Promise<number | HolderStatus>, session?: SessionState): Promise<Held | HolderStatus | undefined> {
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
    // A take-over is decided before any socket opens; a new upstream id (nobody else knows it) once it is welcomed.
    let lease: number | undefined
    if (session !== undefined || when === 'before') {
      const claimed = await claim()
      if (typeof claimed !== 'number') return claimed
      lease = claimed
    }
    const outcome = await connection.open()
    if (outcome !== 'welcome' || this.shutDown) {
      connection.close()
      if (lease !== undefined) {
        // Refused (the cookie no longer identifies the user): the sessions of this upstream end, here and elsewhere.
        const end = outcome === 'unauthorized' ? this.holders.end(upstream, lease, 'unauthorized') : this.holders.release(upstream, lease)
        await end.catch(() => undefined)
      }
      return undefined
    }
    if (lease === undefined) {
      const claimed = await claim()
      if (typeof claimed !== 'number') {
        connection.close()
        return claimed
      }
      lease = claimed
    }
    const held: Held = {
      connection,
      lease,
      sids: new Set(),
      subscribers: new Map(),
      stopCommands: this.hub.broker.subscribe(commandStream(upstream), (message) => void this.remote(upstream, message.data as RoutedCommand)),
      renew: setInterval(() => void this.renew(upstream), Math.max(10, Math.floor(this.options.holderTtl / 3)))
    }
    held.renew.unref()
    this.held.set(upstream, held)
    this.onSocketCount(this.held.size)
    if (session !== undefined) {
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

  /** Closes this process's socket of `upstream` and marks its holder record free (unless another process took it over). */
  private async release(upstream: string, write = true): Promise<void> {
    const held = this.held.get(upstream)
    if (held === undefined) return
    this.held.delete(upstream)
    this.holders.forget(upstream)
    this.onSocketCount(this.held.size)
    clearInterval(held.renew)
    held.stopCommands()
    held.connection.close()
    if (write) await this.holders.release(upstream, held.lease).catch(() => undefined)
  }

  /** Renews this process's holder record; a refused renewal means another process took the socket over: let it go. */
  private async renew(upstream: string): Promise<void> {
    const held = this.held.get(upstream)
    if (held === undefined) return
    try {
      if (!(await this.holders.renew(upstream, held.lease)) && this.held.get(upstream) === held) await this.release(upstream, false)
    } catch (error) {
      this.log.warn({ err: error }, '@rt/action-cable: renewing the holder record failed')
    }
  }

  /**
   * The upstream ended the connection for good: every rt session it served
   * ends with the upstream's reason. Live ones at once, on every process (a
   * notice on the broker); pull ones (long polling) when they are taken up
   * next, from the holder record — their next poll carries the `disconnect`.
   */
  private async ended(upstream: string, reason: string): Promise<void> {
    const held = this.held.get(upstream)
    if (held === undefined) return
    await this.release(upstream, false)
    try {
      await this.holders.end(upstream, held.lease, reason)
      await this.hub.broker.publish(ENDED_STREAM, { upstream, reason } satisfies EndedNotice, { transient: true })
    } catch (error) {
      this.log.error({ err: error }, '@rt/action-cable: recording an ended upstream connection failed')
    }
    await this.endLive(upstream, reason)
  }

  /** Ends the sessions of `upstream` attached on this process: the live ones, and a pull session whose poll is held here. */
  private async endLive(upstream: string, reason: string): Promise<void> {
    const sessions = [...(this.live.get(upstream) ?? [])]
    this.live.delete(upstream)
    const pulled = this.pulled.get(upstream)
    this.pulled.delete(upstream)
    // Still attached here: its streams (this upstream's own, read by nothing else) have it as a listener. A session
    // object whose request is over is left alone (the request holding the session now, anywhere, ends it).
    if (pulled !== undefined && pulled.identifiers.some((identifier) => this.hub.listeners(upstreamStream(upstream, identifier)) > 0)) sessions.push(pulled)
    await Promise.all(sessions.map((session) => this.endSession(session, reason)))
  }

  /** Ends a session as the upstream ended its connection: `disconnect` with the reason (in a long poll's answer too). */
  private async endSession(session: Session, reason: string): Promise<void> {
    if (session.isClosed) return
    await session.disconnect(reason, false)
    // Nothing is left to deliver or re-subscribe; the stored session keeps the disconnect until it is delivered.
    if (session.mode === 'pull') session.state.subscriptions = {}
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
