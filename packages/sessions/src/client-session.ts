import { randomBytes } from 'node:crypto'
import { newSessionId, type CommandResult, type Outgoing, type Session, type SessionSink } from '@rt/core'
import type { SseConnection } from './connection.js'
import { HEARTBEAT_FRAME, encodeEvent } from './encoder.js'
import { toIdentifierString } from './identifier.js'
import { cableEvent, translate, type CableEvent, type PollAnswer, type SessionRequest, type SessionResponse } from './messages.js'
import type { ResolvedOptions } from './options.js'
import { PollQueue } from './poll-queue.js'
import type { Timer, Timers } from './timers.js'

/** What a session needs from the registry that holds it. */
export interface SessionEnvironment {
  options: ResolvedOptions
  timers: Timers
  /** Called once when the session closes (expired or shut down), before the hub session is closed. */
  onClose(session: ClientSession): void
  /** Counts messages dropped from poll queues. */
  onDropped(count: number): void
}

/** A long poll waiting for messages. */
interface PendingPoll {
  resolve(answer: PollAnswer | undefined): void
  timer: Timer | undefined
  scheduled: boolean
}

/** A waiting long poll: its answer, and `cancel` for when its client went away before it. */
export interface PollHandle {
  /** `undefined` once cancelled. */
  answer: Promise<PollAnswer | undefined>
  cancel(): void
}

/** Retry of the event that ends a replaced listener: a year, so a browser's EventSource does not come back. */
export const RETRY_NO_RECONNECT = 31_536_000_000

/**
 * One client-chosen session: the hub session (the server-held "background
 * connection" of the original), its EventSource listeners, and the queue that
 * long polls read while nobody listens. It lives while a listener is attached
 * or a poll waits, and `idleTimeout` after the last of them (and after each
 * POST); then it closes, and its hub session with it.
 */
export class ClientSession implements SessionSink {
  /** The `session_id` of events and answers: new for every background session, so a client can tell a restart. */
  readonly sessionId = newSessionId()
  private hubSession: Session | undefined
  private readonly listeners = new Set<SseConnection>()
  private readonly queue: PollQueue<CableEvent>
  private poll: PendingPoll | undefined
  private readonly chanIds = new Map<string, string>()
  private messageCount = 0
  private expiry: Timer | undefined
  private heartbeat: Timer | undefined
  private closed = false

  /** Stable JSON of the identity that created the session; other identities are refused. */
  identityKey = ''

  constructor(
    /** The client-chosen id of the URL. */
    readonly id: string,
    private readonly env: SessionEnvironment
  ) {
    this.queue = new PollQueue(env.options.pollQueue)
  }

  get isClosed(): boolean {
    return this.closed
  }

  get listenerCount(): number {
    return this.listeners.size
  }

  /** Whether a long poll is waiting for messages. */
  get isPolling(): boolean {
    return this.poll !== undefined
  }

  /** Called once the hub accepted the session (until then it only sent the welcome, which this API does not show). */
  bind(session: Session, identityKey: string): void {
    this.hubSession = session
    this.identityKey = identityKey
    this.touch()
  }

  /** The hub's side: every server message of the session arrives here. */
  send(outgoing: Outgoing): void {
    const message = outgoing.message
    if (message.type === 'disconnect' && !('identifier' in message)) {
      // The hub session ends (an upstream's `disconnect`, a remote disconnect): each subscription is told, then this session closes.
      /* c8 ignore next -- the hub sends its session nothing before the session is bound */
      for (const identifier of this.hubSession?.identifiers ?? []) this.deliver(cableEvent('disconnected', identifier, this.ids(identifier), Date.now()))
      void this.close()
      return
    }
    const translated = translate(outgoing)
    if (translated === undefined) return
    this.deliver(cableEvent(translated.type, translated.identifier, this.ids(translated.identifier), translated.timestamp, translated.message))
  }

  /** Applies a `poll-queue` parameter. */
  resizeQueue(size: number | undefined): void {
    if (size === undefined || size === this.queue.size) return
    this.countDropped(this.queue.resize(size))
  }

  /** Runs a POST's requests in order, each through the hub. */
  async run(requests: readonly SessionRequest[]): Promise<SessionResponse[]> {
    // Not idle while its requests run (a slow channel must not see the session expire under it).
    this.expiry = this.env.timers.clear(this.expiry)
    const responses: SessionResponse[] = []
    for (const request of requests) responses.push(await this.runOne(request))
    this.touch()
    return responses
  }

  /** Attaches an EventSource listener: `joined` to every listener, then what was queued while nobody listened. */
  addListener(listener: SseConnection): void {
    if (!this.env.options.multipleListeners) {
      const replaced = encodeEvent({ event: 'replaced', data: JSON.stringify({ type: 'replaced', id: this.id }), retry: RETRY_NO_RECONNECT })
      for (const older of this.listeners) older.end(replaced)
      this.listeners.clear()
    }
    this.listeners.add(listener)
    this.expiry = this.env.timers.clear(this.expiry)
    this.startHeartbeat()
    const joined = encodeEvent({ data: JSON.stringify({ type: 'joined', id: this.id }) })
    for (const each of this.listeners) each.write(joined)
    for (const event of this.queue.take()) this.writeToListeners(event)
  }

  /** Detaches a listener whose stream ended (either side). */
  removeListener(listener: SseConnection): void {
    if (!this.listeners.delete(listener) || this.listeners.size > 0) return
    this.heartbeat = this.env.timers.clear(this.heartbeat)
    this.touch()
  }

  /**
   * A long poll: answers at once when messages are queued or `timeoutSeconds`
   * is 0, otherwise at the first message or after the timeout. A newer poll
   * answers the one it replaces.
   */
  startPoll(timeoutSeconds: number): PollHandle {
    this.finishPoll()
    this.expiry = this.env.timers.clear(this.expiry)
    if (this.queue.length > 0 || timeoutSeconds === 0) return { answer: Promise.resolve(this.answer()), cancel: () => undefined }
    let pending: PendingPoll | undefined
    const answer = new Promise<PollAnswer | undefined>((resolve) => {
      pending = { resolve, timer: undefined, scheduled: false }
    })
    const poll = pending!
    poll.timer = this.env.timers.start(() => this.finishPoll(poll), timeoutSeconds * 1000)
    this.poll = poll
    return {
      answer,
      cancel: () => {
        if (this.poll !== poll) return
        this.poll = undefined
        this.env.timers.clear(poll.timer)
        poll.resolve(undefined)
        this.touch()
      }
    }
  }

  /**
   * Closes the session (idle, or the server shuts down): a waiting poll is
   * answered, listeners' streams end, and the hub session closes (channels'
   * `unsubscribed` run).
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.finishPoll()
    this.closed = true
    this.expiry = this.env.timers.clear(this.expiry)
    this.heartbeat = this.env.timers.clear(this.heartbeat)
    for (const listener of this.listeners) listener.end()
    this.listeners.clear()
    this.env.onClose(this)
    await this.hubSession?.close()
  }

  private async runOne(request: SessionRequest): Promise<SessionResponse> {
    const identifier = toIdentifierString(request.identifier)
    const chanId = this.chanId(identifier)
    let result: CommandResult
    if ('subscribe' in request) {
      result = await this.handle({ command: 'subscribe', identifier })
    } else if ('unsubscribe' in request) {
      result = await this.handle({ command: 'unsubscribe', identifier })
      if (result.ok) this.deliver(cableEvent('disconnected', identifier, this.ids(identifier), Date.now()))
    } else {
      result = await this.handle({ command: 'message', identifier, data: JSON.stringify(request.send) })
    }
    return result.ok ? { session_id: this.sessionId, chan_id: chanId } : { error: result.error, session_id: this.sessionId, chan_id: chanId }
  }

  private handle(command: unknown): Promise<CommandResult> {
    /* c8 ignore next -- a session is in the registry only once bound */
    if (this.hubSession === undefined) return Promise.resolve({ ok: false, error: 'session not ready' })
    return this.hubSession.handle(command)
  }

  private chanId(identifier: string): string {
    let id = this.chanIds.get(identifier)
    if (id === undefined) this.chanIds.set(identifier, (id = randomBytes(12).toString('base64url')))
    return id
  }

  private ids(identifier: string): { chan_id: string; msg_id: string } {
    return { chan_id: this.chanId(identifier), msg_id: String(++this.messageCount) }
  }

  /** To the listeners if any, otherwise into the poll queue (waking a waiting poll). */
  private deliver(event: CableEvent): void {
    if (this.closed) return
    if (this.listeners.size > 0) return this.writeToListeners(event)
    this.countDropped(this.queue.push(event))
    const poll = this.poll
    if (poll === undefined || poll.scheduled) return
    // Answer once the messages of this turn are all queued (a subscribe confirms and transmits in one go).
    poll.scheduled = true
    setImmediate(() => this.finishPoll(poll))
  }

  private writeToListeners(event: CableEvent): void {
    const { type, ...rest } = event
    const frame = encodeEvent({ data: JSON.stringify({ type, session_id: this.sessionId, ...rest }), id: event.msg_id })
    for (const listener of this.listeners) listener.write(frame)
  }

  private countDropped(dropped: number): void {
    if (dropped > 0) this.env.onDropped(dropped)
  }

  private answer(): PollAnswer {
    const messages = this.queue.take(this.env.options.maxPollMessages)
    const dropped = this.queue.takeDropped()
    const answer: PollAnswer = { messages, session_id: this.sessionId, dropped, queue_length: this.queue.length }
    this.touch()
    return answer
  }

  /** Answers the waiting poll (only `poll` when given, if it is still the one waiting). */
  private finishPoll(poll: PendingPoll | undefined = this.poll): void {
    if (poll === undefined || this.poll !== poll) return
    this.poll = undefined
    this.env.timers.clear(poll.timer)
    poll.resolve(this.answer())
  }

  /** Re-arms the idle timer when nobody listens and no poll waits. */
  private touch(): void {
    this.expiry = this.env.timers.clear(this.expiry)
    if (this.closed || this.listeners.size > 0 || this.poll !== undefined) return
    this.expiry = this.env.timers.start(() => void this.close(), this.env.options.idleTimeoutMs)
  }

  private startHeartbeat(): void {
    if (this.heartbeat !== undefined || this.env.options.heartbeatMs === 0) return
    this.heartbeat = this.env.timers.start(() => {
      this.heartbeat = undefined
      for (const listener of this.listeners) listener.write(HEARTBEAT_FRAME)
      // Cleared when the last listener leaves, so there is still someone to keep alive.
      this.startHeartbeat()
    }, this.env.options.heartbeatMs)
  }
}
