import type { StreamMessage, StreamPosition } from '../broker.js'
import type { SessionState, StoredSubscription } from '../session-store.js'
import { catchUp, historyAfter } from '../stream-reader.js'
import type { Channel, ChannelContext } from './channels.js'
import { validateCommand, parseCommand, type Command, type HistoryRequest } from './commands.js'
import type { Hub } from './hub.js'
import { Outgoing, broadcastReply, controlStream, disconnectMessage, type ServerMessage } from './protocol.js'

/** Where a session's server messages go: the transport's side of the connection. */
export interface SessionSink {
  send(outgoing: Outgoing): void
}

/** The outcome of one command: errors are for the transport to report; the session stays usable. */
export type CommandResult = { ok: true } | { ok: false; error: string }

/**
 * How a session is driven.
 * - `live`: one long response (SSE). Positions advance as messages are written.
 * - `pull`: one request at a time (long polling). Messages are read from the
 *   confirmed positions on every request; positions and the outbox of control
 *   messages advance only on `confirm()`, once the transport knows its
 *   response was written, so a cut response is served again.
 */
export type SessionMode = 'live' | 'pull'

const OK: CommandResult = { ok: true }
const fail = (error: string): CommandResult => ({ ok: false, error })

/** One Action Cable session: its subscriptions, its streams and its read positions. */
export class Session {
  readonly sid: string
  /** Positions of what was handed to the sink (in live mode the very object in `state.positions`). */
  private cursor: Record<string, StreamPosition>
  /** stream → identifiers subscribed to it. */
  private readonly streamIdentifiers = new Map<string, Set<string>>()
  /** Where live delivery of each joined stream began: history up to here is backlog, after it was delivered live. */
  private readonly origin = new Map<string, StreamPosition>()
  /** Streams this session receives live from the hub. */
  private readonly joined = new Set<string>()
  /** Live messages held back while a stream is being caught up from history. */
  private readonly held = new Map<string, StreamMessage[]>()
  private sink: SessionSink | undefined
  private stopRemoteCommands: (() => void) | undefined
  private work: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor(
    private readonly hub: Hub,
    readonly state: SessionState,
    readonly mode: SessionMode,
    /** Whether the session is kept in the store so its sid can restore it (live mode). */
    readonly resumable = true
  ) {
    this.sid = state.sid
    this.cursor = mode === 'live' ? state.positions : { ...state.positions }
    this.index()
  }

  /** Identifiers this session is subscribed to. */
  get identifiers(): string[] {
    return Object.keys(this.state.subscriptions)
  }

  /** Whether `close()` ran. */
  get isClosed(): boolean {
    return this.closed
  }

  /**
   * Connects the session to a transport: re-sends unconfirmed control messages
   * (pull mode), receives its streams live and, with `catchUp`, first sends
   * what was published since its positions.
   */
  async attach(sink: SessionSink, options: { catchUp: boolean }): Promise<void> {
    this.sink = sink
    for (const message of this.state.outbox) sink.send(new Outgoing(message as ServerMessage))
    if (!options.catchUp) for (const stream of this.streamIdentifiers.keys()) delete this.cursor[stream]
    await this.syncStreams()
  }

  /** Runs commands that `hub.sendCommands` addressed to this session, in order. */
  acceptRemoteCommands(): void {
    this.stopRemoteCommands ??= this.hub.broker.subscribe(controlStream(this.sid), (message) => {
      const commands = (message.data as { commands?: unknown }).commands
      for (const command of Array.isArray(commands) ? commands : []) void this.handle(command)
    })
  }

  /** Stops live delivery; the session can be attached again (here or, through the store, elsewhere). */
  detach(): void {
    this.stopRemoteCommands?.()
    this.stopRemoteCommands = undefined
    for (const stream of this.joined) this.hub.leave(stream, this)
    this.joined.clear()
    this.origin.clear()
    this.held.clear()
    this.sink = undefined
  }

  /** Runs a command (a JSON line, or a decoded object); commands of one session run one at a time. */
  handle(input: string | unknown): Promise<CommandResult> {
    const run = this.work.then(() => this.run(input))
    this.work = run.catch(() => undefined)
    return run
  }

  /** Sends `disconnect` and closes the session. */
  async disconnect(reason: string, reconnect: boolean): Promise<void> {
    this.emit(disconnectMessage(reason, reconnect))
    await this.close()
  }

  /**
   * Ends the session on this connection: stops delivery and runs the channels'
   * `unsubscribed` callbacks. Live sessions stay in the store for `sessionsTtl`
   * so a reconnect can restore them.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.work
    this.detach()
    for (const [identifier, subscription] of Object.entries(this.state.subscriptions)) {
      await this.callUnsubscribed(identifier, subscription)
    }
    await this.hub.sessionClosed(this)
    if (this.mode === 'live' && this.resumable) await this.hub.persist(this)
  }

  /** Pull mode: saves subscriptions and the outbox, keeping the confirmed positions. `false` when a newer request took the session over. */
  checkpoint(ttlMs?: number): Promise<boolean> {
    return this.hub.save(this.state, ttlMs)
  }

  /** Pull mode: what was sent is confirmed delivered — positions advance and the outbox empties. */
  confirm(ttlMs?: number): Promise<boolean> {
    this.state.positions = { ...this.cursor }
    this.state.outbox = []
    return this.hub.save(this.state, ttlMs)
  }

  /** Called by the hub's fan-out with a live message of a joined stream. */
  receive(message: StreamMessage): void {
    const held = this.held.get(message.stream)
    if (held !== undefined) held.push(message)
    else this.deliver(message)
  }

  private async run(input: unknown): Promise<CommandResult> {
    if (this.closed) return fail('session closed')
    const parsed = typeof input === 'string' ? parseCommand(input) : validateCommand(input)
    if (!parsed.ok) return parsed
    const command: Command = parsed.command
    switch (command.command) {
      case 'subscribe': return this.subscribe(command.identifier, command.history)
      case 'unsubscribe': return this.unsubscribe(command.identifier)
      case 'message': return this.perform(command.identifier, command.data)
      case 'history': return this.history(command.identifier, command.history)
      case 'pong': return OK
    }
  }

  private async subscribe(identifier: string, history: HistoryRequest | undefined): Promise<CommandResult> {
    if (Object.hasOwn(this.state.subscriptions, identifier)) return fail('already subscribed')
    const decoded = decodeIdentifier(identifier)
    const channel = decoded === undefined ? undefined : this.hub.channel(decoded.channel)
    if (decoded === undefined || channel === undefined) {
      this.emit({ type: 'reject_subscription', identifier })
      return fail(decoded === undefined ? 'invalid identifier' : `unknown channel: ${decoded.channel}`)
    }
    const subscription: StoredSubscription = { channel: decoded.channel, params: decoded.params, streams: [] }
    const transmissions: unknown[] = []
    let rejected = false
    const ctx = this.context(identifier, subscription, {
      reject: () => { rejected = true },
      transmit: (data) => transmissions.push(data)
    })
    try {
      await channel.subscribed?.(ctx)
    } catch (error) {
      this.hub.logError(error, `channel ${decoded.channel} subscribed() failed`)
      rejected = true
    }
    if (rejected || this.closed) {
      this.emit({ type: 'reject_subscription', identifier })
      return OK
    }
    this.state.subscriptions[identifier] = subscription
    this.emit({ type: 'confirm_subscription', identifier })
    for (const data of transmissions) this.emit({ identifier, message: data })
    // With a history request, live messages of the new streams wait until the backlog is out, so order holds.
    const synced = await this.syncStreams(history !== undefined)
    if (!synced.ok) return synced
    if (history !== undefined) {
      await this.history(identifier, history)
      this.release()
    }
    await this.persistLive()
    return OK
  }

  private async unsubscribe(identifier: string): Promise<CommandResult> {
    const subscription = this.subscription(identifier)
    if (subscription === undefined) return fail('unknown subscription')
    delete this.state.subscriptions[identifier]
    await this.callUnsubscribed(identifier, subscription)
    await this.syncStreams()
    await this.persistLive()
    return OK
  }

  private async perform(identifier: string, data: string): Promise<CommandResult> {
    const subscription = this.subscription(identifier)
    if (subscription === undefined) return fail('unknown subscription')
    let payload: unknown
    try {
      payload = JSON.parse(data)
    } catch {
      return fail('perform data must be a JSON string')
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return fail('perform data must be a JSON object')
    const action = (payload as { action?: unknown }).action
    if (typeof action !== 'string') return fail('perform data must name an "action"')
    const channel = this.hub.channel(subscription.channel)
    const actions = channel?.actions
    const handler = actions !== undefined && Object.hasOwn(actions, action) ? actions[action]
      : channel?.perform === undefined ? undefined : (ctx: ChannelContext, data: Record<string, unknown>) => channel.perform!(ctx, action, data)
    if (handler === undefined) return fail(`unknown action: ${action}`)
    const streamsBefore = subscription.streams.join('\n')
    const ctx = this.context(identifier, subscription, {
      reject: () => undefined,
      transmit: (message) => this.emit({ identifier, message })
    })
    let result = OK
    try {
      await handler(ctx, payload as Record<string, unknown>)
    } catch (error) {
      this.hub.logError(error, `channel ${subscription.channel} action ${action} failed`)
      result = fail(`action failed: ${action}`)
    }
    if (subscription.streams.join('\n') !== streamsBefore) {
      await this.syncStreams()
      await this.persistLive()
    }
    return result
  }

  private async history(identifier: string, request: HistoryRequest): Promise<CommandResult> {
    const subscription = this.subscription(identifier)
    if (subscription === undefined) return fail('unknown subscription')
    const since = request.since ?? 0
    if (since <= 0 && request.streams === undefined) return fail('empty history request')
    const backlog: StreamMessage[] = []
    try {
      for (const stream of subscription.streams) {
        const position = request.streams !== undefined && Object.hasOwn(request.streams, stream) ? request.streams[stream] : undefined
        if (position !== undefined) {
          const result = await historyAfter(this.hub.broker, stream, position)
          if (!result.complete) {
            this.emit({ type: 'reject_history', identifier })
            return OK
          }
          backlog.push(...result.messages)
        } else if (since > 0) {
          backlog.push(...(await this.hub.broker.history(stream, { since: since * 1000 })).messages)
        }
      }
    } catch (error) {
      this.hub.logError(error, 'history request failed')
      this.emit({ type: 'reject_history', identifier })
      return OK
    }
    // What is past the position where live delivery began was (or will be) delivered live: no duplicates.
    const missed = backlog.filter((message) => {
      const start = this.origin.get(message.stream)
      return start === undefined || start.epoch !== message.epoch || message.offset <= start.offset
    })
    missed.sort((a, b) => a.timestamp - b.timestamp)
    for (const message of missed) this.emit(replyFor(message, identifier))
    this.emit({ type: 'confirm_history', identifier })
    return OK
  }

  /** The subscription of an identifier (own keys only: identifiers come from clients). */
  private subscription(identifier: string): StoredSubscription | undefined {
    return Object.hasOwn(this.state.subscriptions, identifier) ? this.state.subscriptions[identifier] : undefined
  }

  private context(
    identifier: string,
    subscription: StoredSubscription,
    hooks: { reject(): void; transmit(data: unknown): void }
  ): ChannelContext {
    return {
      identity: this.state.identity,
      params: subscription.params,
      identifier,
      sid: this.sid,
      sourceState: this.state.sourceState,
      streamFrom: (stream) => {
        if (!subscription.streams.includes(stream)) subscription.streams.push(stream)
      },
      stopStream: (stream) => {
        subscription.streams = subscription.streams.filter((s) => s !== stream)
      },
      reject: hooks.reject,
      transmit: hooks.transmit,
      broadcast: (stream, data) => this.hub.broker.publish(stream, data)
    }
  }

  private async callUnsubscribed(identifier: string, subscription: StoredSubscription): Promise<void> {
    const channel: Channel | undefined = this.hub.channel(subscription.channel)
    try {
      await channel?.unsubscribed?.(this.context(identifier, subscription, { reject: () => undefined, transmit: () => undefined }))
    } catch (error) {
      this.hub.logError(error, `channel ${subscription.channel} unsubscribed() failed`)
    }
  }

  /** Rebuilds stream → identifiers from the subscriptions. */
  private index(): void {
    this.streamIdentifiers.clear()
    for (const [identifier, subscription] of Object.entries(this.state.subscriptions)) {
      for (const stream of subscription.streams) {
        let identifiers = this.streamIdentifiers.get(stream)
        if (identifiers === undefined) this.streamIdentifiers.set(stream, (identifiers = new Set()))
        identifiers.add(identifier)
      }
    }
  }

  /**
   * Joins the streams the subscriptions now need and leaves the others. A newly
   * joined stream is caught up from its position (now, for a new subscription)
   * while live messages are held back, so nothing is lost or repeated.
   */
  private async syncStreams(hold = false): Promise<CommandResult> {
    this.index()
    if (this.sink === undefined) return OK
    for (const stream of [...this.joined]) {
      if (this.streamIdentifiers.has(stream)) continue
      this.hub.leave(stream, this)
      this.joined.delete(stream)
      this.origin.delete(stream)
      delete this.cursor[stream]
    }
    const added = [...this.streamIdentifiers.keys()].filter((stream) => !this.joined.has(stream))
    try {
      for (const stream of added) this.cursor[stream] ??= await this.hub.broker.position(stream)
    } catch (error) {
      this.hub.logError(error, 'reading stream positions failed')
      return fail('broker unavailable')
    }
    for (const stream of added) {
      this.origin.set(stream, this.cursor[stream]!)
      this.held.set(stream, [])
      this.joined.add(stream)
      this.hub.join(stream, this)
    }
    for (const stream of added) {
      let caught: Awaited<ReturnType<typeof catchUp>> | undefined
      try {
        caught = await catchUp(this.hub.broker, stream, this.cursor[stream]!)
      } catch (error) {
        this.hub.logError(error, `catching up ${stream} failed`)
      }
      const held = this.held.get(stream)
      // Detached meanwhile: the next attach catches up again from the same position.
      if (held === undefined) continue
      if (hold) {
        // Published since the position was read, so newer than any backlog: wait with the live ones.
        held.unshift(...(caught?.messages ?? []))
        continue
      }
      if (caught !== undefined) {
        // Messages between the position and what is retained are gone: say so, as a history request would.
        if (caught.gap) {
          for (const identifier of this.streamIdentifiers.get(stream)!) this.emit({ type: 'reject_history', identifier })
        }
        for (const message of caught.messages) this.deliver(message)
        this.cursor[stream] = caught.position
      }
      this.release(stream)
    }
    return OK
  }

  /** Delivers the live messages held back for `stream` (every held stream when omitted) and stops holding. */
  private release(stream?: string): void {
    for (const [heldStream, held] of [...this.held]) {
      if (stream !== undefined && heldStream !== stream) continue
      this.held.delete(heldStream)
      for (const message of held) this.deliver(message)
    }
  }

  private deliver(message: StreamMessage): void {
    const { stream } = message
    if (message.offset > 0) {
      const at = this.cursor[stream]
      if (at !== undefined && at.epoch === message.epoch && message.offset <= at.offset) return
      this.cursor[stream] = { offset: message.offset, epoch: message.epoch }
    }
    if (message.meta?.exclude_socket === this.sid) return
    /* c8 ignore next -- a stream is left before its subscriptions are forgotten, so it always has identifiers here */
    for (const identifier of this.streamIdentifiers.get(stream) ?? []) {
      this.sink?.send(replyFor(message, identifier))
    }
  }

  /** Sends a control message (or a history backlog message); pull sessions keep it until confirmed. */
  private emit(message: ServerMessage | Outgoing): void {
    const outgoing = message instanceof Outgoing ? message : new Outgoing(message)
    if (this.mode === 'pull') this.state.outbox.push(outgoing.message)
    this.sink?.send(outgoing)
  }

  private async persistLive(): Promise<void> {
    if (this.mode === 'live' && this.resumable && !this.closed) await this.hub.persist(this)
  }
}

/**
 * The reply of a stream message for one identifier, made once and shared by
 * every session that receives that message object — live (the broker hands the
 * same object to the hub's one subscription) or replayed (the memory broker's
 * history shares its objects) — so each wire format encodes it once. Entries
 * go with the message when history lets it go.
 */
const replies = new WeakMap<StreamMessage, Map<string, Outgoing>>()

function replyFor(message: StreamMessage, identifier: string): Outgoing {
  let byIdentifier = replies.get(message)
  if (byIdentifier === undefined) replies.set(message, (byIdentifier = new Map()))
  let outgoing = byIdentifier.get(identifier)
  if (outgoing === undefined) byIdentifier.set(identifier, (outgoing = new Outgoing(broadcastReply(identifier, message), message)))
  return outgoing
}

/** Decodes a Rails-style identifier: a JSON object with a string `channel`. */
export function decodeIdentifier(identifier: string): { channel: string; params: Record<string, unknown> } | undefined {
  let value: unknown
  try {
    value = JSON.parse(identifier)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const { channel, ...params } = value as Record<string, unknown>
  if (typeof channel !== 'string' || channel === '') return undefined
  return { channel, params }
}
