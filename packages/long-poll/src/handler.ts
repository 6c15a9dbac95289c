import type { ServerResponse } from 'node:http'
import { Type, type Static } from '@sinclair/typebox'
import { disconnectMessage, parseJsonl, type JsonlLine, type Session } from '@rt/core'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { JSONL_CONTENT_TYPE, encodeJsonl, jsonlLine } from './encoder.js'
import { Poll, type Answer } from './poll.js'
import { Control, readState, type LongPollSessions } from './sessions.js'

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
  onAbort: () => void = () => undefined

  constructor(res: ServerResponse) {
    const socket = res.socket!
    this.delivered = new Promise((resolve) => {
      res.once('finish', () => resolve(!socket.destroyed))
      res.once('close', () => {
        resolve(false)
        this.onAbort()
      })
    })
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

  /** Saves what the session needs while this request holds it: keepalive covers the hold. */
  async function checkpoint(session: Session): Promise<boolean> {
    const lp = readState(session.state)
    session.state.transport = { ...session.state.transport, ...lp, expiresAt: Date.now() + sessions.holdMs + options.keepaliveTimeoutMs }
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
    const delivered = result.reason !== 'aborted' && result.reason !== 'superseded' && (await watch.delivered)
    const expiresAt = Date.now() + options.keepaliveTimeoutMs
    session.state.transport = { ...session.state.transport, expiresAt, settled: session.state.lease }
    try {
      if (delivered) await session.confirm(sessions.storeTtlMs)
      else await session.checkpoint(sessions.storeTtlMs)
    } catch (error) {
      reply.log.error({ err: error }, '@rt/long-poll: saving the session failed')
    }
    sessions.end(session.sid, expiresAt)
    if (control !== undefined) {
      try {
        await control.publish({ type: 'released', lease: session.state.lease })
      } catch (error) {
        reply.log.error({ err: error }, '@rt/long-poll: releasing the session failed')
      } finally {
        control.close()
      }
    }
  }

  async function connect(request: LongPollRequest, reply: FastifyReply, lines: JsonlLine[], watch: ResponseWatch): Promise<void> {
    const poll = new Poll(options)
    watch.onAbort = () => poll.end('aborted')
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
      await run(session, lines, poll)
      await checkpoint(session)
      poll.now()
      await respond(reply, watch, session, await poll.answer)
    } finally {
      sessions.polls.delete(poll)
    }
  }

  /**
   * Takes the session over for this request: waits for the request holding it
   * (here or on another process) to answer and save, claims it, runs the
   * commands and saves them. `undefined` when the request was answered 401.
   */
  async function resume(sid: string, reply: FastifyReply, lines: JsonlLine[], poll: Poll): Promise<{ session: Session; control: Control } | undefined> {
    const seen = await hub.store.get(sid)
    if (seen === undefined) return void unknown(reply)
    if (readState(seen).expired === true) return void expired(reply)
    if (sessions.due(seen)) {
      await sessions.expire(seen)
      return void expired(reply)
    }
    const control = new Control(hub, sid, poll)
    try {
      // A request still holding the session answers empty and saves before this one reads it.
      await control.publish({ type: 'end', lease: seen.lease })
      if (seen.lease !== readState(seen).settled) await control.released(seen.lease, sessions.releaseWaitMs)
      const session = await hub.resume(sid, poll, sessions.storeTtlMs)
      if (session === undefined) return void unknown(reply)
      if (readState(session.state).expired === true) {
        session.detach()
        return void expired(reply)
      }
      poll.session = session
      control.claimed(session.state.lease)
      sessions.begin(sid)
      await run(session, lines, poll)
      if (!(await checkpoint(session))) poll.end('superseded')
      return { session, control }
    } finally {
      if (poll.session === undefined) control.close()
    }
  }

  async function poll(sid: string, reply: FastifyReply, lines: JsonlLine[], watch: ResponseWatch): Promise<void> {
    const poll = new Poll(options)
    watch.onAbort = () => poll.end('aborted')
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
    const lines = parseJsonl(body)
    if (lines.length > 0 && !lines.some((line) => line.result.ok)) {
      const reasons = lines.map(({ line, result }) => `line ${line}: ${(result as { error: string }).error}`)
      return answer(reply, 400, jsonlLine({ type: 'error', reason: `no valid command in the body (${reasons.join('; ')})` }))
    }
    const watch = new ResponseWatch(reply.raw)
    const pollId = request.headers['x-anycable-poll-id']
    const running = pollId === undefined ? connect(request, reply, lines, watch) : poll(pollId, reply, lines, watch)
    sessions.running.add(running)
    try {
      await running
    } finally {
      sessions.running.delete(running)
    }
    return reply
  }
}
