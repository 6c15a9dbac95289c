import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'

/** The example server's settings, from the environment. */
export interface ExampleConfig {
  port: number
  host: string
  /** Bearer key of `/_broadcast` (and of the category-poll publish endpoint). */
  broadcastKey: string
  /** Whether the key was generated because RT_BROADCAST_KEY was unset. */
  generatedKey: boolean
  /** Secret that signs streams (`signed_stream_name`). */
  streamsSecret: string
  redisUrl: string | undefined
  /** PEM key and certificate (TLS_KEY, TLS_CERT: file paths): serve HTTPS. */
  tls: { key: string; cert: string } | undefined
  /** Serve HTTP/2 (with HTTP/1.1 for the clients that do not speak it) when TLS is on. Default on; HTTP2=0 turns it off. */
  http2: boolean
  /** With ACTION_CABLE_URL: the upstream Action Cable server whose channels (ChatChannel too) rt serves. */
  actionCable: { url: string; origin: string } | undefined
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  const port = Number(env.PORT ?? 8080)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${env.PORT}`)
  const broadcastKey = env.RT_BROADCAST_KEY || randomBytes(16).toString('hex')
  if (!env.TLS_KEY !== !env.TLS_CERT) throw new Error('TLS_KEY and TLS_CERT go together: both PEM file paths, or neither')
  if (env.HTTP2 !== undefined && env.HTTP2 !== '0' && env.HTTP2 !== '1') throw new Error(`HTTP2 must be 0 or 1, got ${env.HTTP2}`)
  return {
    port,
    host: env.HOST || '127.0.0.1',
    broadcastKey,
    generatedKey: !env.RT_BROADCAST_KEY,
    streamsSecret: env.RT_STREAMS_SECRET || randomBytes(16).toString('hex'),
    redisUrl: env.REDIS_URL || undefined,
    tls: env.TLS_KEY && env.TLS_CERT ? { key: readFileSync(env.TLS_KEY, 'utf8'), cert: readFileSync(env.TLS_CERT, 'utf8') } : undefined,
    http2: env.HTTP2 !== '0',
    actionCable: env.ACTION_CABLE_URL
      // The Origin of upstream handshakes: ACTION_CABLE_ORIGIN, or the upstream's own http(s) origin (Rails allows its own host).
      ? { url: env.ACTION_CABLE_URL, origin: env.ACTION_CABLE_ORIGIN || new URL(env.ACTION_CABLE_URL.replace(/^ws/, 'http')).origin }
      : undefined
  }
}
