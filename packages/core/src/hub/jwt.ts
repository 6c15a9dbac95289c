import { createHmac } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { safeEqual } from '../signing.js'
import type { Identity } from './channels.js'

/**
 * AnyCable's JWT identification, with node:crypto: HS256 is one HMAC and a
 * constant-time comparison, so a library (and its algorithm negotiation, the
 * source of `alg: none` style bugs) would add risk without adding anything.
 * Only `HS256` is accepted, as AnyCable's default.
 */

/** Why a token was refused: `expired` (its `exp` passed) or `invalid` (anything else). */
export type JwtFailure = 'expired' | 'invalid'

export type JwtResult = { ok: true; identity: Identity } | { ok: false; failure: JwtFailure }

export interface JwtOptions {
  /** The HMAC secret (`jwtSecret`, falling back to `secret`). */
  secret: string
  /** Query parameter carrying the token; the header is `X-<param>`. Default `jid`. */
  param: string
  /** Refuse connections without a token. */
  force: boolean
}

function decodeSegment(segment: string): unknown {
  if (!/^[A-Za-z0-9_-]*$/.test(segment)) return undefined
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown
  } catch {
    return undefined
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Verifies an AnyCable token: HS256 signature, `exp` and `nbf` (seconds) when
 * present, and the connection identifiers as a JSON object string in `ext`.
 */
export function verifyJwt(token: string, secret: string, nowMs = Date.now()): JwtResult {
  const invalid: JwtResult = { ok: false, failure: 'invalid' }
  const parts = token.split('.')
  if (parts.length !== 3) return invalid
  const [head, body, signature] = parts as [string, string, string]
  const header = decodeSegment(head)
  if (!isObject(header) || header.alg !== 'HS256') return invalid
  const expected = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')
  if (!safeEqual(expected, signature)) return invalid
  const claims = decodeSegment(body)
  if (!isObject(claims)) return invalid
  const now = nowMs / 1000
  if (claims.exp !== undefined && (typeof claims.exp !== 'number' || claims.exp <= now)) {
    return typeof claims.exp === 'number' ? { ok: false, failure: 'expired' } : invalid
  }
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf > now)) return invalid
  if (typeof claims.ext !== 'string') return invalid
  let identity: unknown
  try {
    identity = JSON.parse(claims.ext)
  } catch {
    return invalid
  }
  return isObject(identity) ? { ok: true, identity } : invalid
}

/** The token of a request: the `X-<param>` header first, then the `?<param>=` query parameter (as AnyCable). */
export function requestToken(request: FastifyRequest, param: string): string | undefined {
  const header = request.headers[`x-${param.toLowerCase()}`]
  if (typeof header === 'string' && header !== '') return header
  const url = request.url
  const query = url.indexOf('?')
  if (query < 0) return undefined
  const value = new URLSearchParams(url.slice(query + 1)).get(param)
  return value === null || value === '' ? undefined : value
}
