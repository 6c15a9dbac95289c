import type { Broker } from './broker.js'
import type { BroadcastAuthorizer } from './broadcast.js'
import type { RetentionOptions } from './memory-broker.js'
import type { Authenticate, Channels } from './hub/channels.js'
import type { SessionStore } from './session-store.js'
import type { Limits } from './limits.js'

/** Options of the `@rt/core` Fastify plugin. */
export interface RtCoreOptions {
  /**
   * The broker every transport reads and writes. Default: a `MemoryBroker` with
   * `history` retention, closed with the app. A broker passed in is the
   * caller's to close (Fastify plugins close only what they created).
   */
  broker?: Broker | undefined
  /** Retention of the default in-memory broker: `historyLimit` (100) and `historyTtl` (300 s), AnyCable's defaults. */
  history?: RetentionOptions | undefined
  /**
   * Application secret. As in AnyCable, the broadcast key is derived from it
   * (`hex(HMAC-SHA256(secret, "broadcast-cable"))`) when `broadcastKey` is not
   * set, and it signs streams when `streamsSecret` is not set.
   */
  secret?: string | undefined
  /** Bearer key of the broadcast endpoint. */
  broadcastKey?: string | undefined
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
  metrics?: boolean | { path?: string } | undefined
  /**
   * Decides who may connect to the Action Cable transports: return an identity
   * object (available to channels as `ctx.identity`), or `false`/`null` to
   * answer 401 with `{"type":"disconnect","reason":"unauthorized","reconnect":false}`.
   * Default: everyone connects with an empty identity.
   */
  authenticate?: Authenticate | undefined
  /** Action Cable channels by name. `$pubsub` (public and signed streams) and `Turbo::StreamsChannel` are built in. */
  channels?: Channels | undefined
  /** Allow `$pubsub` subscriptions to plain `stream_name`s. Default false, as AnyCable's `--public_streams`. */
  publicStreams?: boolean | undefined
  /** Secret that verifies `signed_stream_name`s. Default: `secret`. Without either, signed streams are rejected. */
  streamsSecret?: string | undefined
  /** Secret of Turbo signed streams. Default: `streamsSecret`. */
  turboStreamsSecret?: string | undefined
  /** Seconds a disconnected session can be restored by its sid (AnyCable's `sessions_ttl`). Default 300; 0 disables restoring. */
  sessionsTtl?: number | undefined
  /** Whispers on signed `$pubsub` streams, AnyCable's `--streams_whisper`. Public streams always allow them. Default false. */
  streamsWhisper?: boolean | undefined
  /** Presence on signed `$pubsub` streams, AnyCable's `--streams_presence`. Public streams always allow it. Default false. */
  streamsPresence?: boolean | undefined
  /**
   * Seconds a presence record outlives the session that joined it (AnyCable's
   * `--presence_ttl`). Default 15: a client that reconnects within it does not
   * cause a leave and a join.
   */
  presenceTtl?: number | undefined
  /**
   * Most transient messages (whispers, presence events) a pull session (long
   * polling) keeps for its next request while it is between two requests.
   * Default 100; past it the oldest are dropped, as AnyCable drops for a slow
   * socket.
   */
  transientBacklog?: number | undefined
  /**
   * Secret of AnyCable JWT identification tokens (HS256, identifiers as a JSON
   * string in the `ext` claim). Default: `secret`. With either set, a request
   * carrying a token (`?jid=` or `X-JID`) is identified by it: `ctx.identity`
   * is its identifiers, an expired token is refused with `token_expired`, an
   * invalid one with `unauthorized` (401 both), and `authenticate` is not
   * called. Requests without a token go to `authenticate` unless `jwtForce`.
   */
  jwtSecret?: string | undefined
  /** Query parameter of the token; the header is `X-<param>`. Default `jid`, AnyCable's `--jwt_param`. */
  jwtParam?: string | undefined
  /** Refuse connections without a token (AnyCable's `--enforce_jwt`). Needs a JWT secret. Default false. */
  jwtForce?: boolean | undefined
  /** Where sessions live between requests. Default: in memory (one process). Use `@rt/redis` for clusters. */
  sessionStore?: SessionStore | undefined
  /**
   * Bounds on what every rt endpoint parses: JSON nesting depth, stream and
   * identifier lengths, commands, positions and publications per body (see
   * `Limits` for each default and the README for the table per endpoint).
   * Transports read them from `fastify.rt.limits`.
   */
  limits?: Partial<Limits> | undefined
}
