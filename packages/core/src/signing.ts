import { createHmac, timingSafeEqual } from 'node:crypto'

/** hex(HMAC-SHA256(secret, text)), as AnyCable derives keys and signs streams. */
export function hmacHex(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text).digest('hex')
}

/** Compares two strings in time independent of where they differ. */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  // Compare against itself on length mismatch so the timing does not depend on the input.
  if (left.length !== right.length) {
    timingSafeEqual(left, left)
    return false
  }
  return timingSafeEqual(left, right)
}

/** AnyCable's HTTP broadcast key derived from its global `secret`. */
export function deriveBroadcastKey(secret: string): string {
  return hmacHex(secret, 'broadcast-cable')
}

/**
 * Signs a stream name the way AnyCable (and Rails' MessageVerifier) does:
 * base64 of the JSON-quoted name, `--`, hex HMAC-SHA256 of that base64 text.
 */
export function signStream(name: string, secret: string): string {
  const encoded = Buffer.from(JSON.stringify(name)).toString('base64')
  return `${encoded}--${hmacHex(secret, encoded)}`
}

/** Returns the stream name a signed stream carries, or `undefined` when the signature or payload is invalid. */
export function verifySignedStream(signed: string, secret: string): string | undefined {
  const parts = signed.split('--')
  if (parts.length !== 2) return undefined
  const [encoded, digest] = parts as [string, string]
  if (!safeEqual(hmacHex(secret, encoded), digest)) return undefined
  try {
    const name: unknown = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'))
    return typeof name === 'string' ? name : undefined
  } catch {
    return undefined
  }
}
