import type { KeptMessage, SessionState, SessionStore } from '@rt/core'
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
    return this.connection.call('session get', () => this.connection.client.hmget(this.key(sid), 'lease', 'json', 'kept'))
      .then(([lease, json, kept]) => json === null || json === undefined ? undefined : decode(json, Number(lease), kept))
  }

  create(state: SessionState, ttlMs: number): Promise<void> {
    const json = JSON.stringify({ ...state, kept: undefined, lease: 0 })
    return this.run('create', state.sid, ttlMs, [json]).then(() => undefined)
  }

  claim(sid: string, ttlMs: number, ifLease?: number): Promise<SessionState | undefined> {
    return this.run('claim', sid, ttlMs, [ifLease === undefined ? '' : String(ifLease)]).then((reply) => {
      if (reply === null) return undefined
      const [lease, json, kept] = reply as [number, string, string]
      return decode(json, lease, kept)
    })
  }

  save(state: SessionState, ttlMs: number): Promise<boolean> {
    return this.run('save', state.sid, ttlMs, [String(state.lease), JSON.stringify({ ...state, kept: undefined })]).then((reply) => reply === 1)
  }

  keep(sid: string, messages: readonly KeptMessage[], limit: number): Promise<number | undefined> {
    const args = [String(limit)]
    for (const kept of messages) {
      // The data goes once (as `data`); `json` is the broker's copy of it.
      args.push(kept.id, JSON.stringify({ ...kept, message: { ...kept.message, json: undefined } }))
    }
    return this.run('keep', sid, 1, args).then((reply) => reply === null ? undefined : Number(reply))
  }

  retire(sid: string, ids: readonly string[], limit: number): Promise<void> {
    return this.run('retire', sid, 1, [String(limit), ...ids]).then(() => undefined)
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

function decode(json: string, lease: number, kept: string | null | undefined): SessionState {
  const state: SessionState = { ...(JSON.parse(json) as SessionState), lease }
  if (kept !== null && kept !== undefined && kept !== '') state.kept = kept.split('\n').map((text) => JSON.parse(text) as KeptMessage)
  return state
}
