import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

const Milliseconds = Type.Integer({ minimum: 1 })

/** The options of `@rt/action-cable`, checked at register. */
export const RtActionCableOptionsSchema = Type.Object({
  /** The upstream Action Cable endpoint: `ws://rails:3000/cable`. */
  url: Type.String({ pattern: '^wss?://' }),
  /** Request headers copied from the client's request to the upstream handshake (an allow-list; matched case-insensitively). Default `['cookie']`. */
  forwardHeaders: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' }))),
  /** The `Origin` of every upstream handshake (one the upstream's `allowed_request_origins` accepts). Never copied from the client. */
  origin: Type.Optional(Type.String({ minLength: 1 })),
  /** The upstream's ping interval (Action Cable: 3 s): a socket silent for twice this is treated as dropped. */
  pingInterval: Type.Optional(Milliseconds),
  /** How long a `subscribe` waits for `confirm_subscription`/`reject_subscription` before it counts as rejected (Action Cable sends nothing for unknown channels). */
  subscribeTimeout: Type.Optional(Milliseconds),
  /** Handshake timeout of an upstream socket. */
  connectTimeout: Type.Optional(Milliseconds),
  /** First reconnect delay; doubled per attempt up to `reconnectMaxDelay`, with jitter. */
  reconnectDelay: Type.Optional(Milliseconds),
  reconnectMaxDelay: Type.Optional(Milliseconds),
  /** How long a process's claim to hold a session's upstream socket lasts without renewal (renewed every third of it); another process takes over after it. */
  holderTtl: Type.Optional(Type.Integer({ minimum: 30 })),
  /** How long a command routed to the process holding the upstream socket waits for its answer before that process counts as gone. */
  commandTimeout: Type.Optional(Milliseconds)
}, { additionalProperties: false })

export type RtActionCableOptions = Static<typeof RtActionCableOptionsSchema>

export type ResolvedOptions = Required<Omit<RtActionCableOptions, 'origin'>> & { origin: string | undefined }

/** Validates and defaults the options; throws a `TypeError` naming the first bad one. */
export function resolveOptions(given: unknown): ResolvedOptions {
  if (!Value.Check(RtActionCableOptionsSchema, given)) {
    const error = Value.Errors(RtActionCableOptionsSchema, given).First()
    throw new TypeError(`@rt/action-cable: invalid options: ${error === undefined ? 'unknown error' : `${error.path || '/'} ${error.message}`}`)
  }
  const options = given
  return {
    url: options.url,
    forwardHeaders: (options.forwardHeaders ?? ['cookie']).map((name) => name.toLowerCase()),
    origin: options.origin,
    pingInterval: options.pingInterval ?? 3000,
    subscribeTimeout: options.subscribeTimeout ?? 5000,
    connectTimeout: options.connectTimeout ?? 5000,
    reconnectDelay: options.reconnectDelay ?? 250,
    reconnectMaxDelay: options.reconnectMaxDelay ?? 5000,
    holderTtl: options.holderTtl ?? 15_000,
    commandTimeout: options.commandTimeout ?? 10_000
  }
}
