import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { PUBSUB_CHANNEL, TURBO_CHANNEL, buildIdentifier } from '@rt/core'

/** One value, or several when the parameter is repeated (`stream=a&stream=b`). */
const OneOrMany = Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 64 })])

/**
 * The GET query string. Unknown parameters are allowed (`jid` for an
 * `authenticate` hook, AnyCable's `pi`/`ptp`, cache busters).
 */
export const SseQuerySchema = Type.Object({
  identifier: Type.Optional(OneOrMany),
  channel: Type.Optional(OneOrMany),
  stream: Type.Optional(OneOrMany),
  signed_stream: Type.Optional(OneOrMany),
  turbo_signed_stream_name: Type.Optional(OneOrMany),
  /** Unix seconds: send the history retained since then first. */
  history_since: Type.Optional(Type.String({ pattern: '^[0-9]{1,12}$' })),
  /** `1`, `true`, `t` or `y` (any case): data messages only. */
  raw: Type.Optional(Type.String()),
  /** For clients that cannot set the `Last-Event-ID` header. */
  last_event_id: Type.Optional(Type.String())
})
export type SseQuery = Static<typeof SseQuerySchema>

const checker = TypeCompiler.Compile(SseQuerySchema)

/** The subscription sources in AnyCable's priority order: the first one present wins. */
const SOURCES: ReadonlyArray<readonly [keyof SseQuery, (value: string) => string]> = [
  ['identifier', (value) => value],
  ['channel', (value) => buildIdentifier({ channel: value })],
  ['stream', (value) => buildIdentifier({ channel: PUBSUB_CHANNEL, stream_name: value })],
  ['signed_stream', (value) => buildIdentifier({ channel: PUBSUB_CHANNEL, signed_stream_name: value })],
  ['turbo_signed_stream_name', (value) => buildIdentifier({ channel: TURBO_CHANNEL, signed_stream_name: value })]
]

const RAW = new Set(['1', 'true', 't', 'y'])

export interface GetRequest {
  /** Identifiers to subscribe, in order, without duplicates. */
  identifiers: string[]
  /** `history_since` in Unix seconds. */
  historySince: number | undefined
  raw: boolean
  lastEventId: string | undefined
}

export type ParsedQuery = { ok: true; request: GetRequest } | { ok: false; error: string }

/** Validates the query (compiled TypeBox schema) and turns it into identifiers. */
export function parseQuery(query: unknown): ParsedQuery {
  if (!checker.Check(query)) {
    const first = checker.Errors(query).First()!
    return { ok: false, error: `invalid query parameter ${first.path.slice(1).split('/')[0]}: ${first.message}` }
  }
  let identifiers: string[] = []
  for (const [name, toIdentifier] of SOURCES) {
    const given = query[name]
    const values = (Array.isArray(given) ? given : [given]).filter((value): value is string => value !== undefined && value !== '')
    if (values.length === 0) continue
    identifiers = [...new Set(values.map(toIdentifier))]
    break
  }
  if (identifiers.length === 0) {
    return { ok: false, error: 'no channel provided: use identifier, channel, stream, signed_stream or turbo_signed_stream_name' }
  }
  return {
    ok: true,
    request: {
      identifiers,
      historySince: query.history_since === undefined ? undefined : Number(query.history_since),
      raw: query.raw !== undefined && RAW.has(query.raw.toLowerCase()),
      lastEventId: query.last_event_id
    }
  }
}
