import type { Broker } from './broker.js'
import type { BroadcastAuthorizer } from './broadcast.js'
import type { RetentionOptions } from './memory-broker.js'

/** Options of the `@rt/core` Fastify plugin. */
export interface RtCoreOptions {
  /**
   * The broker every transport reads and writes. Default: a `MemoryBroker` with
   * `history` retention, closed with the app. A broker passed in is the
   * caller's to close (Fastify plugins close only what they created).
   */
  broker?: Broker
  /** Retention of the default in-memory broker: `historyLimit` (100) and `historyTtl` (300 s), AnyCable's defaults. */
  history?: RetentionOptions
  /**
   * Application secret. As in AnyCable, the broadcast key is derived from it
   * (`hex(HMAC-SHA256(secret, "broadcast-cable"))`) when `broadcastKey` is not
   * set, and it signs streams when `streamsSecret` is not set.
   */
  secret?: string
  /** Bearer key of the broadcast endpoint. */
  broadcastKey?: string
  /**
   * The HTTP broadcast endpoint (`POST /_broadcast`). It refuses every request
   * unless a key (`broadcastKey` or `secret`) or `authorize` allows it.
   * `false` does not register it.
   */
  broadcast?: false | {
    /** Default `/_broadcast`. */
    path?: string
    /** Allows a request without (or with another) bearer key, e.g. from a trusted network. */
    authorize?: BroadcastAuthorizer
    /** Largest body in bytes. Default 1 MiB: a batch of publications, not a file upload. */
    bodyLimit?: number
  }
  /** Opt-in Prometheus endpoint. `true` serves `/metrics`. Default off: metrics can reveal traffic. */
  metrics?: boolean | { path?: string }
}
