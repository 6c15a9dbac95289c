import { randomBytes } from 'node:crypto'

/**
 * A source of random URL-safe tokens of `bytes` random bytes each, drawn from a
 * pooled CSPRNG buffer: one system call per 256 tokens instead of one per token
 * (session ids and epochs are made on hot paths: `randomBytes(6)` per epoch was
 * 16 % of a long-poll connect's CPU in bench s3).
 */
export function randomTokens(bytes: number): () => string {
  const poolSize = 256 * bytes
  let pool = Buffer.alloc(0)
  let offset = poolSize
  return () => {
    if (offset >= poolSize) {
      pool = randomBytes(poolSize)
      offset = 0
    }
    const token = pool.toString('base64url', offset, offset + bytes)
    offset += bytes
    return token
  }
}
