import { randomBytes } from 'node:crypto'

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
  /** With ACTION_CABLE_URL: the upstream Action Cable server whose channels (ChatChannel too) rt serves. */
  actionCable: { url: string; origin: string } | undefined
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  const port = Number(env.PORT ?? 8080)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${env.PORT}`)
  const broadcastKey = env.RT_BROADCAST_KEY || randomBytes(16).toString('hex')
  return {
    port,
    host: env.HOST || '127.0.0.1',
    broadcastKey,
    generatedKey: !env.RT_BROADCAST_KEY,
    streamsSecret: env.RT_STREAMS_SECRET || randomBytes(16).toString('hex'),
    redisUrl: env.REDIS_URL || undefined,
    actionCable: env.ACTION_CABLE_URL
      // The Origin of upstream handshakes: ACTION_CABLE_ORIGIN, or the upstream's own http(s) origin (Rails allows its own host).
      ? { url: env.ACTION_CABLE_URL, origin: env.ACTION_CABLE_ORIGIN || new URL(env.ACTION_CABLE_URL.replace(/^ws/, 'http')).origin }
      : undefined
  }
}
