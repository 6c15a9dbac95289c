/**
 * The subscribe query string, validated in golongpoll's order with its error
 * messages: timeout → category → since_time → last_id without since_time →
 * last_id format. The first failure wins.
 */
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { parseMessageId } from '@rt/core'

/** A query parameter: repeated parameters arrive as an array, and the first one counts (Go's `Query().Get`). */
const Param = Type.Union([Type.String(), Type.Array(Type.String())])
export const SubscribeQuerySchema = Type.Object({
  timeout: Type.Optional(Param),
  category: Type.Optional(Param),
  since_time: Type.Optional(Param),
  last_id: Type.Optional(Param)
})
const checkQuery = TypeCompiler.Compile(SubscribeQuerySchema)
/** `strconv.Atoi` / `ParseInt(…, 10, 64)` syntax: optional sign, decimal digits (leading zeros allowed). */
const checkInteger = TypeCompiler.Compile(Type.String({ pattern: '^[+-]?[0-9]+$' }))
/** UUIDs as gofrs/uuid `FromString` takes them: canonical, braced, `urn:uuid:`, or 32 hex digits. */
const checkUuid = TypeCompiler.Compile(Type.String({
  pattern: '^(?:urn:uuid:)?\\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\\}?$'
}))

/** Longest category in UTF-8 bytes (golongpoll's limit). */
export const MAX_CATEGORY_BYTES = 1024
const INT64_MAX = 2n ** 63n - 1n

/** golongpoll's error messages. */
export const Errors = {
  timeout: (max: number) => `Invalid or missing 'timeout' arg.  Must be 1-${max}.`,
  category: 'Invalid subscription category, must be 1-1024 characters long.',
  sinceTime: "Invalid 'since_time' arg.",
  lastIdWithoutSinceTime: "Must provide 'since_time' arg when providing 'last_id'.",
  /** golongpoll says "not a valid UUID"; our ids are rt message ids, and UUIDs are accepted as unknown ids. */
  lastId: "Param 'last_id' was not a valid event id."
} as const

export interface SubscribeQuery {
  category: string
  timeoutSeconds: number
  /** ms since the Unix epoch; `undefined` means "only events published from now on". */
  sinceTime: number | undefined
  /** The id of the last event the client saw; `undefined` when absent or empty. */
  lastId: string | undefined
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/** An int64 in golongpoll's syntax, as a number; `undefined` when it does not parse. */
function int64(text: string): number | undefined {
  if (!checkInteger.Check(text)) return undefined
  // Up to 15 characters (a 13-digit since_time, any timeout) is exact as a double and within int64: no BigInt
  // (two per poll). `+ 0` turns `-0` into the 0 BigInt gives.
  if (text.length <= 15) return Number(text) + 0
  const value = BigInt(text)
  return value > INT64_MAX || value < -INT64_MAX - 1n ? undefined : Number(value)
}

/** Parses and validates a subscribe query; `{ error }` carries golongpoll's message. */
export function parseSubscribeQuery(query: unknown, maxTimeoutSeconds: number): SubscribeQuery | { error: string } {
  /* c8 ignore next -- Fastify's query parser only produces strings and arrays of strings */
  const params = checkQuery.Check(query) ? query : {}
  const timeout = int64(first(params.timeout) ?? '')
  if (timeout === undefined || timeout < 1 || timeout > maxTimeoutSeconds) return { error: Errors.timeout(maxTimeoutSeconds) }
  const category = first(params.category) ?? ''
  const bytes = Buffer.byteLength(category, 'utf8')
  if (bytes < 1 || bytes > MAX_CATEGORY_BYTES) return { error: Errors.category }
  // An empty since_time or last_id counts as absent (golongpoll checks the length; its JS client always sends last_id=).
  const sinceText = first(params.since_time) ?? ''
  const sinceTime = sinceText === '' ? undefined : int64(sinceText)
  if (sinceText !== '' && sinceTime === undefined) return { error: Errors.sinceTime }
  const lastIdText = first(params.last_id) ?? ''
  const lastId = lastIdText === '' ? undefined : lastIdText
  if (lastId !== undefined && sinceTime === undefined) return { error: Errors.lastIdWithoutSinceTime }
  if (lastId !== undefined && parseMessageId(lastId) === undefined && !checkUuid.Check(lastId)) return { error: Errors.lastId }
  return { category, timeoutSeconds: timeout, sinceTime, lastId }
}
