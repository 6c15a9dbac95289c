/**
 * `GET|POST subscribePath?category&timeout&since_time&last_id`: answers the
 * unseen events at once, or holds the request until the next one or the
 * timeout. A held request is released when its client goes away and when the
 * app closes, and leaves no listener or timer behind.
 */
import type { Broker, StreamMessage } from '@rt/core'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { isVisibleLive, readBacklog, type CategoryView } from '../cursor.js'
import { errorBody, json, SUBSCRIBE_HEADERS, timeoutBody, type EventEncoder } from '../encoder.js'
import type { CategoryFeeds, FeedMember, SharedAnswer } from '../feed.js'
import type { ResolvedOptions } from '../options.js'
import { passes } from './guard.js'
import { parseSubscribeQuery, type SubscribeQuery } from './query.js'

/** Every request currently held, so the app can release them when it closes. */
export class HeldPolls {
  private readonly polls = new Set<HeldPoll>()

  add(poll: HeldPoll): void {
    this.polls.add(poll)
  }

  delete(poll: HeldPoll): void {
    this.polls.delete(poll)
  }

  /** Answers every held request with a timeout (the server is going away). */
  releaseAll(): void {
    for (const poll of [...this.polls]) poll.timeout()
  }
}

/**
 * The `timestamp` of a timeout answer, for the client's next `since_time`.
 * One millisecond before now: the request saw every event up to now, and an
 * event published later in this same millisecond must still be newer than it.
 * Never before a `since_time` the client already passed (and not in the future).
 */
export function timeoutTimestamp(now: number, sinceTime: number | undefined): number {
  return Math.max(now - 1, Math.min(sinceTime ?? -Infinity, now))
}

interface PollContext {
  broker: Broker
  /** One broker subscription per category for every held request (see `feed.ts`). */
  feeds: CategoryFeeds
  view: CategoryView
  encoder: EventEncoder
  deleteAfterRead: boolean
  held: HeldPolls
  log: FastifyBaseLogger
}

/** One subscribe request from the moment it is valid until it is answered or its client leaves. */
export class HeldPoll implements FeedMember {
  private done = false
  private reading = true
  private readonly pending: StreamMessage[] = []
  // Set when history has been read, before any live message is judged.
  private unseen!: (message: StreamMessage) => boolean
  /** Events this request's cursor asked for are gone: every answer says so. */
  private incomplete = false
  private leave: (() => void) | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly context: PollContext, private readonly query: SubscribeQuery, private readonly reply: FastifyReply) {}

  /** Answers at once when there are unseen events, otherwise parks the request. Resolves once it is answered or parked. */
  async start(): Promise<void> {
    const { context, query } = this
    this.reply.raw.on('close', this.clientGone)
    context.held.add(this)
    try {
      // Listen first, then read history: nothing published in between can fall through the gap.
      this.leave = context.feeds.join(query.category, this)
      const started = Date.now()
      const backlog = await readBacklog(context.broker, query, context.view, started)
      if (this.done) return
      this.unseen = backlog.unseen
      this.incomplete = backlog.incomplete
      this.reading = false
      if (backlog.events.length > 0) return this.answer(backlog.events)
      const now = Date.now()
      const held = this.pending.filter((message) => isVisibleLive(message, context.view, now) && this.unseen(message))
      if (held.length > 0) return this.answer(held.slice(0, context.view.maxEventsPerResponse))
      // Parked: the timer is armed only now, for what is left of the timeout counted from the request's start. A
      // request answered from history never arms (and clears) a timer, which is most of them when golongpoll loops
      // lag behind the publisher (bench s4). A history read that outlasts the timeout is answered right after it.
      this.timer = setTimeout(() => this.timeout(), Math.max(0, started + query.timeoutSeconds * 1000 - now))
    } catch (error) {
      this.end()
      throw error
    }
  }

  /** Answers `{"timeout": …}`. */
  timeout(): void {
    this.send(json(timeoutBody(timeoutTimestamp(Date.now(), this.query.sinceTime), this.incomplete)))
  }

  /** A live message of the category (from its feed): held while history is read, answered at once when it is new to this request. */
  offer(message: StreamMessage, shared: SharedAnswer): void {
    // Never called once answered: the request left its feed then (and a feed a broker still calls after unsubscribing has no members).
    if (this.reading) {
      this.pending.push(message)
      return
    }
    if (!isVisibleLive(message, this.context.view, Date.now()) || !this.unseen(message)) return
    // Alone in its answer: the body every poll of the category answered with this event shares.
    this.send(shared.body(this.incomplete))
    this.removeRetrieved([message])
  }

  private answer(events: StreamMessage[]): void {
    this.send(this.context.encoder.eventsBytes(events, this.incomplete))
    this.removeRetrieved(events)
  }

  /** `deleteEventAfterFirstRetrieval`: what was just answered leaves the category's history. */
  private removeRetrieved(events: StreamMessage[]): void {
    if (!this.context.deleteAfterRead) return
    this.context.broker.remove(this.query.category, events.map((event) => event.offset)).catch((error: unknown) => {
      this.context.log.error({ err: error }, '@rt/category-poll: could not delete retrieved events')
    })
  }

  private send(body: Buffer): void {
    this.end()
    void this.reply.code(200).send(body)
  }

  private readonly clientGone = (): void => {
    // The client disconnected while held: nothing is written, everything is released now.
    if (!this.done) this.end()
  }

  private end(): void {
    this.done = true
    clearTimeout(this.timer)
    this.leave?.()
    this.reply.raw.off('close', this.clientGone)
    this.context.held.delete(this)
  }
}

/** The subscribe route handler. */
export function subscribeHandler(options: ResolvedOptions, context: PollContext) {
  async function subscribe(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    reply.headers(SUBSCRIBE_HEADERS)
    if (options.beforeSubscribe !== undefined && !(await passes(options.beforeSubscribe, request, reply))) return
    const query = parseSubscribeQuery(request.query, options.maxTimeoutSeconds)
    if ('error' in query) {
      void reply.code(options.errorStatus).send(json(errorBody(query.error)))
      return
    }
    await new HeldPoll(context, query, reply).start()
  }
  // Deliberately not an async route handler: one that returns `reply` while the request is still held makes the
  // returned promise adopt `reply.then`, which waits for the response with end-of-stream listeners (Fastify's
  // `eos`) on every poll — a listener set per request for nothing, since the poll answers through `reply.send`.
  // Errors take the same path as a rejected async handler's (`reply.send(error)` → the error handler).
  return function subscribeRoute(request: FastifyRequest, reply: FastifyReply): void {
    subscribe(request, reply).catch((error: unknown) => {
      void reply.send(error)
    })
  }
}
