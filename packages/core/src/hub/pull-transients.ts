import { createHash } from 'node:crypto'
import { messageJson, type StreamMessage } from '../broker.js'
import type { Session } from './session.js'

const SAFE_ID = /^[\w-]{1,64}$/
const ids = new WeakMap<StreamMessage, string>()

/**
 * The id of a transient message, the same on every process that received it:
 * its `meta.transient_id` when it has a usable one, otherwise a digest of what
 * every process receives alike (stream, epoch, broker timestamp, data, meta).
 */
export function transientId(message: StreamMessage): string {
  let id = ids.get(message)
  if (id === undefined) {
    const given = message.meta?.transient_id
    id = given !== undefined && SAFE_ID.test(given) ? given
      : createHash('sha256').update(`${message.stream}\n${message.epoch}\n${message.timestamp}\n${messageJson(message)}\n${JSON.stringify(message.meta ?? {})}`).digest('base64url')
    ids.set(message, id)
  }
  return id
}

/**
 * The pull sessions this process answered last and that keep listening to
 * their streams between two requests (see `Session.detach`), with when each
 * stops at the latest (its store TTL): one sweep timer while there are any,
 * and at most one per sid (a newer request for the sid here replaces it).
 */
export class ParkedSessions {
  private readonly parked = new Map<string, { session: Session; until: number }>()
  private timer: NodeJS.Timeout | undefined

  /** Number of parked sessions. */
  get size(): number {
    return this.parked.size
  }

  add(session: Session, until: number): void {
    const previous = this.parked.get(session.sid)
    if (previous !== undefined && previous.session !== session) previous.session.unpark()
    this.parked.set(session.sid, { session, until })
    this.timer ??= setInterval(() => this.sweep(), 1000)
    this.timer.unref()
  }

  /** The session parked here for `sid`, if any. */
  get(sid: string): Session | undefined {
    return this.parked.get(sid)?.session
  }

  delete(session: Session): void {
    if (this.parked.get(session.sid)?.session !== session) return
    this.parked.delete(session.sid)
    if (this.parked.size === 0) this.stop()
  }

  /** A newer request for `sid` holds the session on this process now: the parked one stops. */
  supersede(session: Session): void {
    const previous = this.parked.get(session.sid)
    if (previous !== undefined && previous.session !== session) previous.session.unpark()
  }

  sweep(now = Date.now()): void {
    for (const { session, until } of [...this.parked.values()]) if (until <= now) session.unpark()
  }

  close(): void {
    for (const { session } of [...this.parked.values()]) session.unpark()
    this.stop()
  }

  private stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }
}
