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
