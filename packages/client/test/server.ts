import Fastify, { type FastifyInstance } from 'fastify'
import { rtCore, type RtCoreOptions } from '@rt/core'
import { rtLongPoll } from '@rt/long-poll'
import { rtSse } from '@rt/sse'

/** A real rt server with SSE and long polling, an Echo channel on stream `echo`. */
export async function startServer(
  t: { teardown(fn: () => unknown): void },
  core: RtCoreOptions = {},
  setup?: (app: FastifyInstance) => void
): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ forceCloseConnections: true })
  await app.register(rtCore, {
    publicStreams: true,
    channels: {
      Echo: {
        subscribed: (ctx) => ctx.streamFrom('echo'),
        actions: {
          say: async (ctx, data) => { await ctx.broadcast('echo', { text: data.text }) },
          whisper: (ctx, data) => ctx.transmit({ private: data.text })
        }
      }
    },
    ...core
  })
  await app.register(rtSse, { pingInterval: 200 })
  await app.register(rtLongPoll, { pollInterval: 2, flushInterval: 20, keepaliveTimeout: 5 })
  setup?.(app)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, url }
}

export async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
