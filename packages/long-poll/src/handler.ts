import type { ServerResponse } from 'node:http'
import { Type, type Static } from '@sinclair/typebox'
import { disconnectMessage, parseJsonl, type JsonlLine, type Session } from '@rt/core'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { JSONL_CONTENT_TYPE, encodeJsonl, jsonlLine } from './encoder.js'
import { Poll, type Answer } from './poll.js'
import { Control, publishReleased, readState, type LongPollSessions } from './sessions.js'

/** Session ids are 128 random bits in base64url (22 characters); anything far longer is not one. */
const Id = Type.String({ minLength: 1, maxLength: 128 })

/** The request headers long polling reads (others, such as cookies for `authenticate`, pass through). */
export const HeadersSchema = Type.Object({
  'x-anycable-poll-id': Type.Optional(Id),
  'x-anycable-restore-sid': Type.Optional(Id)
})

/** The query parameters long polling reads (`?sid=` restores a session, as AnyCable's client sends it). */
export const QuerySchema = Type.Object({
  sid: Type.Optional(Id)
})

export type LongPollRequest = FastifyRequest<{ Headers: Static<typeof HeadersSchema>; Querystring: Static<typeof QuerySchema> }>

export const POLL_ID_HEADER = 'X-Anycable-Poll-ID'

/**
 * Tells, once the answer is written, whether it reached the client's
 * connection whole; and whether the client left before the answer.
 * `finish` alone is not proof: Node also emits it when the connection was
 * reset mid-write, so the socket must still be up when it fires.
 */
class ResponseWatch {
  readonly delivered: Promise<boolean>
  private cutOff: NodeJS.Timeout | undefined

  /** `onAbort` runs when the client leaves before the answer is written. */
  constructor(private readonly res: ServerResponse, onAbort: () => void) {
    // HTTP/2 (compat API): `res.socket` stands for the request's own stream, which is closed as soon as the
    // answer is sent; a reset stream shows a non-zero code instead (NO_ERROR is 0).
    const h2 = (res as unknown as { stream?: { rstCode?: number } }).stream
    const socket = res.socket!
    // One listener: 'close' follows every response, in the tick after 'finish' when it was written (the
    // socket cannot change state in between), alone when the client left first. HTTP/2's compat response
    // reports itself finished whenever its stream closes, even before anything was written (and a client
    // cancelling may close it with NO_ERROR): only an answer ended before the close can have been delivered.
    this.delivered = new Promise((resolve) => {
      res.once('close', () => {
        clearTimeout(this.cutOff)
        if (res.writableEnded && res.writableFinished) return resolve(h2 === undefined ? !socket.destroyed : !h2.rstCode)
        resolve(false)
        onAbort()
      })
    })
  }

  /** Destroys the connection of a client that has not taken the whole answer within `ms` (it confirms nothing). */
  limit(ms: number): void {
    if (this.res.writableFinished || this.res.destroyed) return
    this.cutOff = setTimeout(() => this.res.destroy(), ms)
  }
}

/**
 * The long-polling endpoint: every request is a POST with a JSONL body (any
 * Content-Type). Without `X-Anycable-Poll-ID` it connects (authenticates and
 * welcomes); with it, it polls that session. See the README for the model.
 */
export function longPollHandler(sessions: LongPollSessions) {
  const { hub, options } = sessions

  function answer(reply: FastifyReply, status: number, body: Buffer, sid?: string): FastifyReply {
    reply.code(status).type(JSONL_CONTENT_TYPE)
    if (sid !== undefined) reply.header(POLL_ID_HEADER, sid)
    return reply.send(body)
  }

  function expired(reply: FastifyReply): FastifyReply {
    sessions.countStale()
    return answer(reply, 401, encodeJsonl(disconnectMessage('session_expired', true)))
  }

  function unknown(reply: FastifyReply): FastifyReply {
    sessions.countStale()
    return answer(reply, 401, Buffer.alloc(0))
  }

  /** Runs the request's commands in order; a bad line gets an error line and the rest still runs. */
  async function run(session: Session, lines: JsonlLine[], poll: Poll): Promise<void> {
    for (const { line, result } of lines) {
      if (result.ok) await session.handle(result.command)
      else poll.write(jsonlLine({ type: 'error', line, reason: result.error }))
    }
  }

  /**
   * Saves what the session needs while this request holds it: keepalive covers
   * the hold, and `settled` stays below the lease until the request answered,
   * so that a newer request waits for it to release the session.
   */
  async function checkpoint(session: Session): Promise<boolean> {
    const lp = readState(session.state)
    const settled = Math.min(lp.settled, session.state.lease - 1)
    session.state.transport = { ...session.state.transport, ...lp, settled, expiresAt: Date.now() + sessions.holdMs + options.keepaliveTimeoutMs }
    return session.checkpoint(sessions.storeTtlMs)
  }

  /**
   * Writes the answer, then records the outcome: a response written whole
   * confirms what it carried (positions advance, the outbox empties); one that
   * was cut, abandoned or superseded confirms nothing, so the next poll serves
   * it again.
   */
  async function respond(reply: FastifyReply, watch: ResponseWatch, session: Session, result: Answer, control?: Control): Promise<void> {
    answer(reply, 200, result.body, session.sid)
    watch.limit(options.keepaliveTimeoutMs)
    const delivered = result.reason !== 'aborted' && result.reason !== 'superseded' && (await watch.delivered)
    const expiresAt = Date.now() + options.keepaliveTimeoutMs
    session.state.transport = { ...session.state.transport, expiresAt, settled: session.state.lease }
    let saved = false
    try {
      saved = delivered ? await session.confirm(sessions.storeTtlMs) : await session.checkpoint(sessions.storeTtlMs)
    } catch (error) {
      reply.log.error({ err: error }, '@rt/long-poll: saving the session failed')
    }
    sessions.end(session.sid, expiresAt)
    try {
      // Only a request that still held the session releases it; the newer request waits for exactly this.
      if (saved) await publishReleased(hub, session.sid, session.state.lease)
    } catch (error) {
      reply.log.error({ err: error }, '@rt/long-poll: releasing the session failed')
    } finally {
      control?.close()
    }
  }

  /**
   * The store or broker failed mid-request (answered 503 by the route's error
   * handler): lets the session go on this process, leaving the stored one as
   * it was saved last, for the client's retry.
   */
  function abandon(sid: string | undefined, poll: Poll): void {
    const begun = poll.session !== undefined
    poll.abandon()
    poll.session = undefined
    if (begun && sid !== undefined) sessions.end(sid, Date.now() + options.keepaliveTimeoutMs)
  }

  async function connect(request: LongPollRequest, reply: FastifyReply, lines: JsonlLine[]): Promise<void> {
    const poll = new Poll(options)
    const watch = new ResponseWatch(reply.raw, () => poll.end('aborted'))
    sessions.polls.add(poll)
    try {
      const restoreSid = request.headers['x-anycable-restore-sid'] ?? request.query.sid
      const connected = await hub.connect(request, poll, { mode: 'pull', restoreSid })
      if ('rejected' in connected) {
        answer(reply, 401, encodeJsonl(disconnectMessage(connected.rejected, false)))
        return
      }
      const { session } = connected
      poll.session = session
      sessions.begin(session.sid)
      try {
        await run(session, lines, poll)
        await checkpoint(session)
      } catch (error) {
        abandon(session.sid, poll)
        throw error
      }
      poll.now()
      await respond(reply, watch, session, await poll.answer)
    } finally {
      sessions.polls.delete(poll)
    }
  }

  /**
   * Takes the session over for this request, exactly once across processes:
   * asks the request holding it (here or on another process) to answer at
   * once, waits until it has saved and released the session, then claims it
   * at the lease it was read at — if another request claimed it first, starts
   * over from the newer state. Then runs the commands and saves them.
   * `undefined` when the request was answered 401.
   */
  async function resume(sid: string, reply: FastifyReply, lines: JsonlLine[], poll: Poll): Promise<{ session: Session; control: Control } | undefined> {
    let seen = await hub.store.get(sid)
    const control = new Control(hub, sid, poll)
    try {
      let asked = -1
      let session: Session | undefined
      while (session === undefined) {
        if (seen === undefined) return void unknown(reply)
        if (readState(seen).expired === true) return void expired(reply)
        if (sessions.due(seen)) {
          await sessions.expire(seen)
          return void expired(reply)
        }
        const held = sessions.held(seen)
        if (asked < seen.lease) {
          // Also makes sure this request listens from here on (a publish waits for its own process's subscription).
          await control.publish({ type: 'end', lease: seen.lease })
          asked = seen.lease
          // A release published before this request listened shows in the store: read again rather than wait for it.
          if (held) {
            seen = await hub.store.get(sid)
            continue
          }
        }
        if (held && !(await control.released(seen.lease, sessions.releaseWaitMs))) sessions.countReleaseTimeout()
        session = await hub.resume(sid, poll, sessions.storeTtlMs, seen.lease)
        if (session === undefined) seen = await hub.store.get(sid)
      }
      // Not expired: only expire() marks a session so, and it claims the session first, which would have made
      // this claim at the lease read above fail.
      poll.session = session
      control.claimed(session.state.lease)
      sessions.begin(sid)
      await run(session, lines, poll)
      if (!(await checkpoint(session))) poll.end('superseded')
      return { session, control }
    } catch (error) {
      abandon(sid, poll)
      throw error
    } finally {
      if (poll.session === undefined) control.close()
    }
  }

  async function poll(sid: string, reply: FastifyReply, lines: JsonlLine[]): Promise<void> {
    const poll = new Poll(options)
    const watch = new ResponseWatch(reply.raw, () => poll.end('aborted'))
    sessions.polls.add(poll)
    try {
      const unlock = await sessions.lock(sid)
      let held: Awaited<ReturnType<typeof resume>>
      try {
        held = await resume(sid, reply, lines, poll)
      } finally {
        unlock()
      }
      if (held === undefined) return
      poll.hold()
      await respond(reply, watch, held.session, await poll.answer, held.control)
    } finally {
      sessions.polls.delete(poll)
    }
  }

  return async function handler(request: LongPollRequest, reply: FastifyReply): Promise<FastifyReply> {
    const body = typeof request.body === 'string' ? request.body : ''
    const lines = parseJsonl(body, hub.limits)
    const overLimit = lines.find((line) => !line.result.ok && line.result.status === 413)
    if (overLimit !== undefined) {
      return answer(reply, 413, jsonlLine({ type: 'error', reason: `line ${overLimit.line}: ${(overLimit.result as { error: string }).error}` }))
    }
    if (lines.length > 0 && !lines.some((line) => line.result.ok)) {
      const reasons = lines.map(({ line, result }) => `line ${line}: ${(result as { error: string }).error}`)
      return answer(reply, 400, jsonlLine({ type: 'error', reason: `no valid command in the body (${reasons.join('; ')})` }))
    }
    // connect() and poll() watch the response before their first await: a client leaving early is not missed.
    const pollId = request.headers['x-anycable-poll-id']
    const running = pollId === undefined ? connect(request, reply, lines) : poll(pollId, reply, lines)
    sessions.running.add(running)
    try {
      await running
    } finally {
      sessions.running.delete(running)
    }
    return reply
  }
}
