import { randomTokens } from '../random-tokens.js'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Broker, StreamMessage } from '../broker.js'
import type { SessionState, SessionStore } from '../session-store.js'
import { DEFAULT_LIMITS, type Limits } from '../limits.js'
import { PUBSUB_CHANNEL, TURBO_CHANNEL, pubsubChannel, turboChannel, type Authenticate, type Channel, type Channels, type Identity } from './channels.js'
import { requestToken, verifyJwt, type JwtOptions } from './jwt.js'
import { PresenceTracker } from './presence.js'
import { ParkedSessions } from './pull-transients.js'
import type { ChannelSource } from './channel-source.js'
import { Outgoing, controlStream } from './protocol.js'
import { REMOTE_COMMANDS_STREAM, RecentDisconnects, canonicalIdentity, disconnectTarget, type RemoteDisconnect } from './remote-disconnect.js'
import { Session, type JoinedStream, type SessionMode, type SessionSink } from './session.js'

export interface HubOptions {
  broker: Broker
  store: SessionStore
  /** Application channels by name. `$pubsub` and `Turbo::StreamsChannel` are built in. */
  channels?: Channels
  /** Decides who connects. Default: everyone, with an empty identity. */
  authenticate?: Authenticate
  /** Allow `$pubsub` subscriptions by plain `stream_name`. Default false, as AnyCable's `--public_streams`. */
  publicStreams?: boolean
  /** Secret of `signed_stream_name`s. Without it signed streams are rejected. */
  streamsSecret?: string
  /** Secret of Turbo signed streams. Default: `streamsSecret`. */
  turboStreamsSecret?: string
  /** Seconds a closed session can be restored by its sid. Default 300 (AnyCable's `sessions_ttl`); 0 disables restoring. */
  sessionsTtl?: number
  /**
   * How long a restored session holds the live messages of its restored
   * subscriptions while waiting for the client's `history` or new `subscribe`
   * for them, in ms. Default 30 000: AnyCable's client sends it right after the
   * welcome; this only bounds a client that never does.
   */
  restoreWaitMs?: number
  /** Whispers on signed `$pubsub` streams (AnyCable's `--streams_whisper`). Default false. */
  streamsWhisper?: boolean
  /** Presence on signed `$pubsub` streams (AnyCable's `--streams_presence`). Default false. */
  streamsPresence?: boolean
  /** Seconds a presence record outlives its session (AnyCable's `presence_ttl`). Default 15. */
  presenceTtl?: number
  /**
   * Most transient messages a pull session keeps for its next request while it
   * is between two requests (the oldest are dropped past it). Default 100.
   */
  transientBacklog?: number
  /** AnyCable's JWT identification; without it tokens are not looked at. */
  jwt?: JwtOptions
  logger?: Pick<FastifyBaseLogger, 'error' | 'warn'>
  /** Bounds on commands, identifiers and stream names. Default {@link DEFAULT_LIMITS}. */
  limits?: Limits
}

export type ConnectResult =
  | { session: Session; restored: boolean }
  | { rejected: ConnectRejection }

/** Why a connection was refused: no identity, or an expired JWT (AnyCable's `token_expired`). Both answer 401. */
export type ConnectRejection = 'unauthorized' | 'token_expired'

export interface ConnectOptions {
  /** A sid from an earlier welcome (`?sid=` or `X-AnyCable-Restore-SID`): restores that session without authenticating. */
  restoreSid?: string | undefined
  /** Default `live`. */
  mode?: SessionMode
  /**
   * Live sessions: accept commands sent with `hub.sendCommands(sid, …)` from any
   * request on any process (a one-way stream such as SSE has no other way to
   * receive `message`, `subscribe` or `unsubscribe` after it opened). Default false.
   */
  remoteCommands?: boolean
  /**
   * Live sessions: keep the session in the store so that its sid restores it
   * (and `sendCommands` finds it). Default true; `false` for transports that
   * never show the sid to their client, so nothing is stored for them.
   */
  resumable?: boolean
}

/**
 * Session-store keys starting with `$rt:` are rt's own records (e.g. `@rt/action-cable`'s holder records),
 * never sessions: a client-sent sid naming one neither restores nor resumes it. Session ids are base64url.
 */
const isInternalRecord = (sid: string): boolean => sid.startsWith('$rt:')

/** The `transport` state of a new session (see {@link SessionState.transport}). */
const NO_TRANSPORT_STATE: Record<string, unknown> = Object.freeze({})

/**
 * 128 random bits, URL-safe: unguessable, since a sid can restore a session
 * without authentication.
 */
export const newSessionId: () => string = randomTokens(16)

/**
 * The Action Cable session model shared by every Action Cable transport:
 * authentication, channels, subscriptions, history, and the fan-out of a
 * stream's broadcasts to the sessions of this process.
 */
export class Hub {
  readonly broker: Broker
  readonly store: SessionStore
  readonly sessionsTtlMs: number
  /** What commands, identifiers and stream names are checked against (every transport parses with these). */
  readonly limits: Limits
  readonly restoreWaitMs: number
  /** Most transient messages kept per pull session between two requests. */
  readonly transientBacklog: number
  /** Pull sessions listening to their streams between two requests on this process. */
  readonly parked: ParkedSessions
  private readonly channels = new Map<string, Channel>()
  private readonly authenticator: Authenticate | undefined
  private readonly logger: Pick<FastifyBaseLogger, 'error' | 'warn'> | undefined
  private source: ChannelSource | undefined
  /** stream → the sessions of this process receiving it (their joined-stream records), with the one broker subscription they share. */
  private readonly fanout = new Map<string, { members: Set<JoinedStream>; unsubscribe: () => void }>()
  /** Presence sets: joins, leaves, info, expiry. */
  readonly presence: PresenceTracker
  private readonly jwt: JwtOptions | undefined
  /** Sessions attached to a transport on this process, by canonical identity: what a remote disconnect ends at once. */
  private readonly attachedByIdentity = new Map<string, Set<Session>>()
  private readonly recentDisconnects: RecentDisconnects
  private stopRemoteCommands: (() => void) | undefined

  constructor(options: HubOptions) {
    this.broker = options.broker
    this.store = options.store
    this.authenticator = options.authenticate
    this.logger = options.logger
    this.sessionsTtlMs = (options.sessionsTtl ?? 300) * 1000
    this.limits = options.limits ?? { ...DEFAULT_LIMITS }
    this.restoreWaitMs = options.restoreWaitMs ?? 30_000
    this.transientBacklog = options.transientBacklog ?? 100
    this.parked = new ParkedSessions(this)
    for (const [name, channel] of Object.entries(options.channels ?? {})) this.channels.set(name, channel)
    this.jwt = options.jwt
    this.presence = new PresenceTracker({
      broker: this.broker,
      ttlMs: (options.presenceTtl ?? 15) * 1000,
      logError: (error, message) => this.logError(error, message)
    })
    this.recentDisconnects = new RecentDisconnects(Math.max(this.sessionsTtlMs, 60_000))
    const streams = {
      publicStreams: options.publicStreams ?? false,
      streamsSecret: options.streamsSecret,
      turboStreamsSecret: options.turboStreamsSecret,
      streamsWhisper: options.streamsWhisper ?? false,
      streamsPresence: options.streamsPresence ?? false
    }
    this.channels.set(PUBSUB_CHANNEL, pubsubChannel(streams))
    this.channels.set(TURBO_CHANNEL, turboChannel(streams))
  }

  /** Number of streams this process receives for its sessions. */
  get streamCount(): number {
    return this.fanout.size
  }

  /** Number of sessions on this process receiving `stream`. */
  listeners(stream: string): number {
    return this.fanout.get(stream)?.members.size ?? 0
  }

  /** A JS channel by name, else the channel source's (see {@link useChannelSource}). */
  channel(name: string): Channel | undefined {
    return this.channels.get(name) ?? this.source?.channel(name)
  }

  /** Installs the one source of the channels that are not JS channels (e.g. `@rt/action-cable`). */
  useChannelSource(source: ChannelSource): void {
    if (this.source !== undefined) throw new Error('@rt/core: a channel source is already installed on this hub')
    this.source = source
  }

  /** The installed channel source, if any. */
  get channelSource(): ChannelSource | undefined {
    return this.source
  }

  /**
   * Identifies a request (its JWT, or the `authenticate` hook, see
   * {@link identify}); `undefined` means 401.
   */
  async authenticate(request: FastifyRequest): Promise<Identity | undefined> {
    const identified = await this.identify(request)
    return typeof identified === 'string' ? undefined : identified
  }

  /** Runs the `authenticate` hook. A throwing hook is logged and counts as a rejection. */
  private async runAuthenticate(request: FastifyRequest): Promise<Identity | undefined> {
    if (this.authenticator === undefined) return {}
    try {
      const identity = await this.authenticator(request)
      return identity === false || identity === null || identity === undefined ? undefined : identity
    } catch (error) {
      this.logError(error, 'authenticate() failed')
      return undefined
    }
  }

  /**
   * Opens a session for a request: restores `restoreSid` when it is known (no
   * authentication, as AnyCable), otherwise authenticates. On success the
   * welcome (with the new sid) has been sent to the sink.
   */
  async connect(request: FastifyRequest, sink: SessionSink, options: ConnectOptions = {}): Promise<ConnectResult> {
    const mode = options.mode ?? 'live'
    let previous = options.restoreSid !== undefined && this.sessionsTtlMs > 0 ? await this.takeOver(options.restoreSid) : undefined
    // A session ended by a remote disconnect is not restored.
    if (previous !== undefined && this.recentDisconnects.ended(previous.identity, previous.createdAt)) previous = undefined
    let identity: Identity
    if (previous !== undefined) {
      identity = previous.identity
    } else {
      const identified = await this.identify(request)
      if (typeof identified === 'string') return { rejected: identified }
      identity = identified
    }
    const sid = newSessionId()
    let sourceState = previous?.sourceState
    if (previous === undefined && this.source?.open !== undefined) {
      sourceState = await this.source.open(request, sid)
      if (sourceState === undefined) return { rejected: 'unauthorized' }
    }
    const state: SessionState = {
      sid,
      identity,
      subscriptions: previous?.subscriptions ?? {},
      positions: {},
      outbox: [],
      // Transports replace this object, never write into it: one shared empty one until then (56 B a session).
      transport: NO_TRANSPORT_STATE,
      lease: 0,
      createdAt: Date.now()
    }
    const restoredIds = previous === undefined ? undefined : Object.keys(state.subscriptions)
    // Live messages of the restored subscriptions wait for the history the client asks for next (see SessionState.restoring).
    if (restoredIds !== undefined && restoredIds.length > 0) state.restoring = { identifiers: restoredIds, until: Date.now() + this.restoreWaitMs }
    if (sourceState !== undefined) state.sourceState = sourceState
    const resumable = mode === 'pull' || options.resumable !== false
    // A pull session is stored by the transport's first checkpoint, with what its first request did.
    const session = new Session(this, state, mode, resumable, mode === 'live' ? resumable : false)
    sink.send(new Outgoing(restoredIds === undefined
      ? { type: 'welcome', sid: state.sid }
      : { type: 'welcome', sid: state.sid, restored: true, restored_ids: restoredIds }))
    if (mode === 'live' && resumable) await this.store.create(state, this.ttl(undefined))
    if (previous !== undefined) await this.presence.transfer(previous.sid, state)
    // A restored session continues from now; the client asks for what it missed with `history`, which goes out first.
    await session.attach(sink, { catchUp: false })
    await this.sourceAttached(session)
    if (options.remoteCommands === true && mode === 'live') session.acceptRemoteCommands()
    return { session, restored: previous !== undefined }
  }

  /**
   * Pull mode: takes a stored session over for one request (a newer request for
   * the same sid wins every later save) and attaches it to `sink`, catching up
   * from its confirmed positions. `undefined` when the session does not exist
   * or, with `ifLease`, when its lease is no longer `ifLease` (another request
   * claimed it first; see `SessionStore.claim`).
   */
  async resume(sid: string, sink: SessionSink, ttlMs?: number, ifLease?: number): Promise<Session | undefined> {
    if (isInternalRecord(sid)) return undefined
    const state = await this.store.claim(sid, this.ttl(ttlMs), ifLease)
    if (state === undefined) return undefined
    const session = new Session(this, state, 'pull')
    if (this.recentDisconnects.ended(state.identity, state.createdAt)) {
      // Remotely disconnected between two requests: this one carries the disconnect, and nothing else is left to run.
      await session.attach(sink, { catchUp: false })
      await session.disconnect('remote', false)
      state.subscriptions = {}
      return session
    }
    await session.attach(sink, { catchUp: true })
    await this.sourceAttached(session)
    return session
  }

  /** Tells the channel source that a session closed. */
  async sessionClosed(session: Session): Promise<void> {
    try {
      await this.source?.closed?.(session)
    } catch (error) {
      this.logError(error, 'the channel source failed on a closed session')
    }
  }

  /**
   * Identifies a new connection: its JWT when JWT identification is on and
   * the request carries a token, otherwise the `authenticate` hook.
   */
  async identify(request: FastifyRequest): Promise<Identity | ConnectRejection> {
    const token = this.jwt === undefined ? undefined : requestToken(request, this.jwt.param)
    if (this.jwt !== undefined && token !== undefined) {
      const verified = verifyJwt(token, this.jwt.secret)
      if (verified.ok) return verified.identity
      return verified.failure === 'expired' ? 'token_expired' : 'unauthorized'
    }
    if (this.jwt?.force === true) return 'unauthorized'
    return (await this.runAuthenticate(request)) ?? 'unauthorized'
  }

  /** A session is attached to a transport on this process. */
  attached(session: Session): void {
    // Listening from the first session on (not at construction: a hub that never holds a session costs nothing).
    this.stopRemoteCommands ??= this.broker.subscribe(REMOTE_COMMANDS_STREAM, (message) => {
      void this.remoteDisconnect(message.data as RemoteDisconnect)
    })
    const identity = canonicalIdentity(session.state.identity)
    let sessions = this.attachedByIdentity.get(identity)
    if (sessions === undefined) this.attachedByIdentity.set(identity, (sessions = new Set()))
    sessions.add(session)
    this.presence.hold(session.state)
  }

  /** A session left its transport on this process (answered poll, closed stream). */
  detached(session: Session): void {
    const identity = canonicalIdentity(session.state.identity)
    const sessions = this.attachedByIdentity.get(identity)
    if (sessions?.delete(session) === true && sessions.size === 0) this.attachedByIdentity.delete(identity)
    this.presence.release(session.state)
  }

  /** A session ended without leaving its presence sets: its records expire after the presence TTL. */
  async presenceEnded(state: SessionState): Promise<void> {
    try {
      await this.presence.ended(state)
    } catch (error) {
      this.logError(error, 'presence expiry failed')
    }
  }

  /**
   * Ends every session whose identity is `identifier` (the JSON of its
   * identifiers), on every process: published on the broker, which hands it to
   * each process's hub. AnyCable's remote `disconnect` command.
   */
  async disconnectRemote(identifier: string, reconnect: boolean): Promise<void> {
    await this.broker.publish(REMOTE_COMMANDS_STREAM, { identifier, reconnect } satisfies RemoteDisconnect, { transient: true })
  }

  private async remoteDisconnect(command: RemoteDisconnect): Promise<void> {
    const target = typeof command.identifier === 'string' ? disconnectTarget(command.identifier) : undefined
    if (target === undefined) return
    this.recentDisconnects.record(target)
    for (const session of [...(this.attachedByIdentity.get(target) ?? [])]) {
      try {
        await session.disconnect('remote', command.reconnect === true)
        if (session.mode === 'live') await this.store.delete(session.sid)
        else session.state.subscriptions = {}
      } catch (error) {
        this.logError(error, 'remote disconnect failed')
      }
    }
  }

  /**
   * Sends commands to a live session wherever it is held (through the broker, so
   * across processes). Replies go to that session's own connection. `false`
   * when no such session exists.
   */
  async sendCommands(sid: string, commands: readonly unknown[]): Promise<boolean> {
    if ((await this.store.get(sid)) === undefined) return false
    await this.broker.publish(controlStream(sid), { commands }, { transient: true })
    return true
  }

  /** Stores a new session's state (lease 0). */
  create(state: SessionState, ttlMs?: number): Promise<void> {
    return this.store.create(state, this.ttl(ttlMs))
  }

  /** Saves a session's state (compare-and-set on its lease). */
  save(state: SessionState, ttlMs?: number): Promise<boolean> {
    return this.store.save(state, this.ttl(ttlMs))
  }

  /** Saves a live session so that it can be restored; recreated when it expired from the store meanwhile. */
  async persist(session: Session): Promise<void> {
    if (this.sessionsTtlMs === 0) return
    try {
      if (!(await this.store.save(session.state, this.sessionsTtlMs))) await this.store.create(session.state, this.sessionsTtlMs)
    } catch (error) {
      this.logError(error, 'saving the session failed')
    }
  }

  /** Adds a session's stream to the stream's fan-out (one broker subscription per stream per process). */
  join(joined: JoinedStream): void {
    let entry = this.fanout.get(joined.stream)
    if (entry === undefined) {
      const members = new Set<JoinedStream>()
      const unsubscribe = this.broker.subscribe(joined.stream, (message) => this.dispatch(members, message))
      this.fanout.set(joined.stream, (entry = { members, unsubscribe }))
    }
    entry.members.add(joined)
  }

  /** Takes a session's stream out of the fan-out; the broker subscription ends with its last member. */
  leave(joined: JoinedStream): void {
    const entry = this.fanout.get(joined.stream)
    if (entry === undefined || !entry.members.delete(joined) || entry.members.size > 0) return
    entry.unsubscribe()
    this.fanout.delete(joined.stream)
  }

  logError(error: unknown, message: string): void {
    this.logger?.error({ err: error }, `@rt/core: ${message}`)
  }

  /** Ends every broker subscription of this process. */
  close(): void {
    for (const entry of this.fanout.values()) entry.unsubscribe()
    this.fanout.clear()
    this.stopRemoteCommands?.()
    this.stopRemoteCommands = undefined
    this.parked.close()
    this.presence.close()
  }

  private dispatch(members: Set<JoinedStream>, message: StreamMessage): void {
    for (const joined of members) {
      try {
        joined.session.receive(joined, message)
      } catch (error) {
        this.logError(error, 'delivering a broadcast failed')
      }
    }
  }

  private async sourceAttached(session: Session): Promise<void> {
    try {
      await this.source?.attached?.(session)
    } catch (error) {
      this.logError(error, 'the channel source failed on an attached session')
    }
  }

  private async takeOver(sid: string): Promise<SessionState | undefined> {
    if (isInternalRecord(sid)) return undefined
    const state = await this.store.get(sid)
    if (state !== undefined) await this.store.delete(sid)
    return state
  }

  private ttl(ttlMs: number | undefined): number {
    return ttlMs ?? Math.max(this.sessionsTtlMs, 1000)
  }
}
