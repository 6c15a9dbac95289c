import type { Outgoing, Session, SessionSink } from '@rt/core'
import { encodeJsonl } from './encoder.js'

/**
 * Why a request was answered:
 * - `ready`: a connect, or a poll whose flush interval ran out (messages pending);
 * - `timeout`: the poll interval passed with nothing to send (empty body);
 * - `superseded`: a newer request for the session took over (empty body, nothing confirmed);
 * - `closing`: `fastify.close()` (whatever is pending is sent);
 * - `aborted`: the client went away before the answer (nothing is written).
 */
export type AnswerReason = 'ready' | 'timeout' | 'superseded' | 'closing' | 'aborted'

export interface Answer {
  reason: AnswerReason
  /** The JSONL body (empty for `timeout`, `superseded` and `aborted`). */
  body: Buffer
}

export interface PollTiming {
  pollIntervalMs: number
  flushIntervalMs: number
  /** Most bytes of stream messages one answer carries (one message always fits an empty answer). */
  maxAnswerSize: number
}

const EMPTY = Buffer.alloc(0)

/**
 * One request's side of a session: the sink the session writes to, and the
 * hold of a poll. A poll is held until something is pending (then for the
 * flush interval, to batch more) or for the poll interval, with one timer at a
 * time. Answering detaches the session in the same synchronous step as the
 * body is cut, so what the session counts as sent is exactly what the body
 * holds.
 */
export class Poll implements SessionSink {
  /** The session this request drives, once connected or resumed. */
  session: Session | undefined
  /** Settles with the answer, once. */
  readonly answer: Promise<Answer>
  private readonly chunks: Buffer[] = []
  private bytes = 0
  /** Set once a stream message did not fit: the answer goes out as soon as it can, the rest waits for the next poll. */
  private full = false
  private timer: NodeJS.Timeout | undefined
  private flushing = false
  private phase: 'setup' | 'held' | 'answered' = 'setup'
  private requested: Exclude<AnswerReason, 'ready' | 'timeout'> | undefined
  private settle!: (answer: Answer) => void

  constructor(private readonly timing: PollTiming) {
    this.answer = new Promise((resolve) => { this.settle = resolve })
  }

  send(outgoing: Outgoing): void {
    this.write(outgoing.encode(encodeJsonl))
    if (this.phase === 'held' && !this.flushing) this.flushSoon()
  }

  /**
   * Whether a stream message's replies fit under `maxAnswerSize`. The first
   * refusal fills the answer: it is sent at once (from a new task, since the
   * session is mid-delivery) and refuses everything after, so per stream what
   * the answer carries is a prefix of what was pending.
   */
  admits(replies: readonly Outgoing[]): boolean {
    if (this.full || this.phase === 'answered') return false
    let size = 0
    for (const reply of replies) size += reply.encode(encodeJsonl).length
    if (this.bytes === 0 || this.bytes + size <= this.timing.maxAnswerSize) return true
    this.full = true
    if (this.phase === 'held') {
      clearTimeout(this.timer)
      this.timer = setTimeout(() => this.finish('ready'), 0)
    }
    return false
  }

  /** Adds a line that is not a session message (a per-request error). */
  write(line: Buffer): void {
    this.chunks.push(line)
    this.bytes += line.length
  }

  /** Answers at once with what is pending (a connect). */
  now(): void {
    if (this.phase !== 'setup') return
    this.finish(this.requested ?? 'ready')
  }

  /** Setup is over: holds the poll until something is pending or the poll interval passes. */
  hold(): void {
    if (this.phase !== 'setup') return
    if (this.requested !== undefined) return this.finish(this.requested)
    if (this.full) return this.finish('ready')
    this.phase = 'held'
    if (this.chunks.length > 0) this.flushSoon()
    else this.timer = setTimeout(() => this.finish('timeout'), this.timing.pollIntervalMs)
  }

  /**
   * Ends the request early. During setup the request is answered as soon as
   * setup is over; a client abort always wins (nothing can be written then).
   */
  end(reason: 'superseded' | 'closing' | 'aborted'): void {
    if (this.phase === 'answered') return
    if (this.phase === 'setup') {
      if (reason === 'aborted' || this.requested === undefined) this.requested = reason
      return
    }
    this.finish(reason)
  }

  /** Ends the request without an answer of its own (its setup failed): stops delivery at once. */
  abandon(): void {
    if (this.phase !== 'answered') this.finish('aborted')
  }

  private flushSoon(): void {
    if (this.full) return
    clearTimeout(this.timer)
    this.flushing = true
    this.timer = setTimeout(() => this.finish('ready'), this.timing.flushIntervalMs)
  }

  private finish(reason: AnswerReason): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.phase = 'answered'
    this.session?.detach()
    const body = reason === 'ready' || reason === 'closing' ? Buffer.concat(this.chunks) : EMPTY
    this.chunks.length = 0
    this.bytes = 0
    this.settle({ reason, body })
  }
}
