import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { DEFAULT_LIMITS, parseBoundedJson, type Limits } from '@rt/core'
import type { SessionRequest } from './messages.js'
import type { ResolvedOptions } from './options.js'

/** A client-chosen session id: 22 to 100 URL-safe characters, i.e. at least 132 bits when drawn at random. */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{22,100}$/

const IdentifierSchema = Type.Object({ channel: Type.String({ minLength: 1 }) }, { additionalProperties: true })
const RequestSchema = Type.Union([
  Type.Object({ identifier: IdentifierSchema, subscribe: Type.Literal(true) }),
  Type.Object({ identifier: IdentifierSchema, unsubscribe: Type.Literal(true) }),
  Type.Object({ identifier: IdentifierSchema, send: Type.Object({ action: Type.String({ minLength: 1 }) }, { additionalProperties: true }) })
])
const requestCheck = TypeCompiler.Compile(RequestSchema)

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string; status?: 413 }

const KINDS = ['subscribe', 'unsubscribe', 'send'] as const
const kindsOf = (request: object): string[] => KINDS.filter((kind) => Object.hasOwn(request, kind))

/** Why one request is not one of the three kinds, in words a client can act on. */
function requestError(value: unknown): string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be a JSON object'
  const request = value as Record<string, unknown>
  const identifier = request.identifier
  if (typeof identifier !== 'object' || identifier === null || Array.isArray(identifier)) return 'needs an "identifier" object'
  const channel = (identifier as Record<string, unknown>).channel
  if (typeof channel !== 'string' || channel === '') return 'needs "identifier.channel", a non-empty string'
  const kinds = kindsOf(request)
  if (kinds.length !== 1) return 'must have exactly one of "subscribe": true, "unsubscribe": true or "send": {"action": ...}'
  if (kinds[0] === 'send') return '"send" must be an object with a non-empty string "action"'
  return `"${kinds[0]}" must be true`
}

/**
 * Parses a POST body: a non-empty JSON array of subscribe, unsubscribe and send
 * requests, nested at most `limits.maxJsonDepth` levels, at most
 * `limits.maxCommandsPerBody` of them (413 above). Nothing runs unless all are valid.
 */
export function parseRequests(body: unknown, limits: Pick<Limits, 'maxJsonDepth' | 'maxCommandsPerBody'> = DEFAULT_LIMITS): Parsed<SessionRequest[]> {
  const parsed = parseBoundedJson(typeof body === 'string' ? body : '', limits.maxJsonDepth)
  if (!parsed.ok) return { ok: false, error: parsed.error === 'malformed JSON' ? 'the body is not valid JSON' : `the body is ${parsed.error}` }
  const value = parsed.value
  if (!Array.isArray(value)) return { ok: false, error: 'the body must be a JSON array of requests' }
  if (value.length === 0) return { ok: false, error: 'the body must contain at least one request' }
  if (value.length > limits.maxCommandsPerBody) return { ok: false, error: `more than ${limits.maxCommandsPerBody} requests in one body`, status: 413 }
  for (const [index, request] of value.entries()) {
    if (!requestCheck.Check(request) || kindsOf(request).length !== 1) return { ok: false, error: `request ${index}: ${requestError(request)}` }
  }
  return { ok: true, value: value as SessionRequest[] }
}

const Digits = Type.String({ pattern: '^[0-9]{1,9}$' })
const QueryFormatSchema = Type.Object({ timeout: Type.Optional(Digits), 'poll-queue': Type.Optional(Digits) })
const QueryFormat = TypeCompiler.Compile(QueryFormatSchema)

/** The query parameters of GET and POST, as numbers. */
export interface SessionQuery {
  timeout: number
  pollQueue: number | undefined
}

/** Compiles the query validator for the options' bounds. */
export function queryParser(options: ResolvedOptions): (query: unknown) => Parsed<SessionQuery> {
  const ranges = TypeCompiler.Compile(Type.Object({
    timeout: Type.Integer({ minimum: 0, maximum: options.maxPollTimeout }),
    'poll-queue': Type.Optional(Type.Integer({ minimum: 1, maximum: options.maxPollQueue }))
  }))
  const describe = {
    timeout: `"timeout" must be a whole number of seconds from 0 to ${options.maxPollTimeout}`,
    'poll-queue': `"poll-queue" must be a whole number from 1 to ${options.maxPollQueue}`
  }
  const firstError = (check: TypeCheck<TSchema>, value: unknown): string => {
    const path = check.Errors(value).First()!.path.slice(1)
    return describe[path as keyof typeof describe]
  }
  return (query) => {
    if (!QueryFormat.Check(query)) return { ok: false, error: firstError(QueryFormat, query) }
    const raw = query as Static<typeof QueryFormatSchema>
    const numbers = {
      timeout: raw.timeout === undefined ? options.pollTimeout : Number(raw.timeout),
      'poll-queue': raw['poll-queue'] === undefined ? undefined : Number(raw['poll-queue'])
    }
    if (!ranges.Check(numbers)) return { ok: false, error: firstError(ranges, numbers) }
    return { ok: true, value: { timeout: numbers.timeout, pollQueue: numbers['poll-queue'] } }
  }
}
