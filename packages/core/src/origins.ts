import type { FastifyReply, FastifyRequest } from 'fastify'

/**
 * AnyCable's `allowed_origins` rule: an Origin is allowed when its host (with
 * port) equals an entry, or an entry `*.example.com` matches a subdomain of
 * example.com; the entry `*` allows every origin. Used by every transport's CORS.
 */
export function originMatcher(allowedOrigins: readonly string[]): (origin: string | undefined) => boolean {
  const entries = allowedOrigins.map((entry) => entry.trim().toLowerCase()).filter((entry) => entry !== '')
  if (entries.includes('*')) return () => true
  return (origin) => {
    if (origin === undefined) return false
    let host: string
    try {
      host = new URL(origin).host.toLowerCase()
    } catch {
      return false
    }
    if (host === '') return false
    return entries.some((entry) => entry.startsWith('*.') ? host.endsWith(entry.slice(1)) : host === entry)
  }
}

/** Validates an `allowedOrigins` plugin option; throws with the plugin's name in the message. */
export function checkAllowedOrigins(value: unknown, plugin: string): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.some((entry) => typeof entry !== 'string' || entry.trim() === '')) {
    throw new TypeError(`${plugin}: allowedOrigins must be an array of hosts ("example.com", "*.example.com", "localhost:3000") or ["*"]`)
  }
  return value as string[]
}

/**
 * The `origin` option for @fastify/cors from an `allowedOrigins` list: `['*']`
 * answers `Access-Control-Allow-Origin: *` (which browsers never combine with
 * cookies), anything else echoes only matching origins.
 */
export function corsOrigin(allowedOrigins: readonly string[]): '*' | ((origin: string | undefined, callback: (error: Error | null, allow: boolean) => void) => void) {
  if (allowedOrigins.some((entry) => entry.trim() === '*')) return '*'
  const allowed = originMatcher(allowedOrigins)
  return (origin, callback) => callback(null, allowed(origin))
}

/** The host a request was sent to: `Host` on HTTP/1.1, `:authority` on HTTP/2 (which has no Host header). */
export function requestHost(request: FastifyRequest): string | undefined {
  const host = request.headers.host ?? request.headers[':authority']
  return typeof host === 'string' ? host : undefined
}

/** Whether an Origin names the host the request was sent to. */
export function isSameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host
  } catch {
    return false
  }
}

/**
 * An `onRequest` hook that refuses (403) a browser request from another site
 * unless `allowedOrigins` lets that origin in. Browsers send `Origin` with every
 * cross-origin POST, including "simple" ones that need no preflight and carry
 * the user's cookies: without this check a page elsewhere could subscribe or
 * perform actions as the visitor. Requests without `Origin` (curl, servers) pass.
 */
export function originGuard(allowedOrigins: readonly string[] | undefined): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const allowed = allowedOrigins === undefined ? () => false : originMatcher(allowedOrigins)
  return async (request, reply) => {
    const origin = request.headers.origin
    if (origin === undefined || request.method === 'OPTIONS' || isSameOrigin(origin, requestHost(request)) || allowed(origin)) return
    await reply.code(403).send({ error: 'forbidden', message: 'origin not allowed: add it to allowedOrigins' })
  }
}
