import Fastify, { type FastifyInstance } from 'fastify'
import { rtCore } from '@rt/core'
import { ChatChannel } from './chat-channel.js'
import type { ExampleConfig } from './config.js'

/** One endpoint the example serves, for the index at `/` and the startup log. */
export interface Endpoint {
  method: string
  path: string
  what: string
}

/**
 * Builds the example app: @rt/core on the in-memory broker plus every rt
 * transport, each on its default path. Exported for the example's own tests.
 */
export async function buildApp(config: ExampleConfig, options: { logger?: boolean } = {}): Promise<{ app: FastifyInstance; endpoints: Endpoint[] }> {
  const app = Fastify({ logger: options.logger ?? false })
  const endpoints: Endpoint[] = []

  await app.register(rtCore, {
    broadcastKey: config.broadcastKey,
    metrics: true,
    channels: { ChatChannel },
    publicStreams: true,
    streamsSecret: config.streamsSecret
  })
  endpoints.push({ method: 'POST', path: '/_broadcast', what: 'publish: {"stream","data"} with Authorization: Bearer <key>' })
  endpoints.push({ method: 'GET', path: '/metrics', what: 'Prometheus metrics' })

  app.get('/', async () => ({ name: 'rt example server', endpoints }))
  return { app, endpoints }
}
