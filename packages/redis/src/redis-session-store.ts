import type { SessionState, SessionStore } from '@rt/core'
import { Connection } from './connection.js'
import { sessionKey } from './keys.js'
import { checkCommon, type RedisSessionStoreOptions } from './options.js'
import { sessionScript } from './session-script.js'

function ttl(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs))
}

/**
 * A `SessionStore` on Redis, so that a session created on one node continues on
 * any other: one hash per sid holding the session as JSON and its lease, with a
 * TTL. `claim` increments the lease and refreshes the TTL atomically (optionally only at an expected lease); `save` is a
 * compare-and-set on the lease (both Lua), so of two concurrent requests for one
 * session, on one node or two, the newer claim wins everywhere.
 *
 * During an outage calls reject with `BrokerUnavailableError`.
 */
export class RedisSessionStore implements SessionStore {
  readonly keyPrefix: string
  private readonly connection: Connection

  constructor(options: RedisSessionStoreOptions) {
    this.keyPrefix = checkCommon(options)
    this.connection = new Connection(options, 'session store')
  }

  get(sid: string): Promise<SessionState | undefined> {
    return this.connection.call('session get', () => this.connection.client.hmget(this.key(sid), 'lease', 'json'))
      .then(([lease, json]) => json === null || json === undefined ? undefined : decode(json, Number(lease)))
  }

  create(state: SessionState, ttlMs: number): Promise<void> {
    const json = JSON.stringify({ ...state, lease: 0 })
    return this.run('create', state.sid, ttlMs, [json]).then(() => undefined)
  }

  claim(sid: string, ttlMs: number, ifLease?: number): Promise<SessionState | undefined> {
    return this.run('claim', sid, ttlMs, [ifLease === undefined ? '' : String(ifLease)]).then((reply) => {
      if (reply === null) return undefined
      const [lease, json] = reply as [number, string]
      return decode(json, lease)
    })
  }

  save(state: SessionState, ttlMs: number): Promise<boolean> {
    return this.run('save', state.sid, ttlMs, [String(state.lease), JSON.stringify(state)]).then((reply) => reply === 1)
  }

  delete(sid: string): Promise<void> {
    return this.connection.call('session delete', () => this.connection.client.del(this.key(sid))).then(() => undefined)
  }

  /** Closes the connection if it was created from `url`. */
  close(): Promise<void> {
    return this.connection.close()
  }

  private key(sid: string): string {
    return sessionKey(this.keyPrefix, sid)
  }

  private run(op: string, sid: string, ttlMs: number, args: string[]): Promise<unknown> {
    return this.connection.call(`session ${op}`, () => sessionScript.run(this.connection.client, [this.key(sid)], [op, ttl(ttlMs), ...args]))
  }
}

function decode(json: string, lease: number): SessionState {
  return { ...(JSON.parse(json) as SessionState), lease }
}
