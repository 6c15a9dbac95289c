import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { acceptAnyBodyAsText, corsOrigin, originGuard, readManifest, requireRtCore, unavailableErrorHandler } from '@rt/core'
import { sseHandler, Streams } from './handler.js'
import { resolveOptions, type RtSseOptions } from './options.js'

export type { RtSseOptions } from './options.js'
export { formatCursor, parseResume, CURSOR_PREFIX, type ParsedResume } from './cursor.js'
export { encodeGetFrame, encodePostFrame, RETRY_NO_RECONNECT } from './encoder.js'

/** Request headers a cross-origin client may send: AnyCable's list, plus `Last-Event-ID` and rt's `X-RT-SID`. */
const ALLOWED_HEADERS = 'Origin, X-Requested-With, X-Request-ID, Content-Type, Accept, X-CSRF-Token, Authorization, Last-Event-ID, X-RT-SID'

/** This package's name and supported `@rt/core` range, for the one-copy check at register. */
const manifest = readManifest(new URL('../package.json', import.meta.url))

async function rtSsePlugin(fastify: FastifyInstance, given: RtSseOptions): Promise<void> {
  requireRtCore(fastify, manifest)
  const options = resolveOptions(given)
  const { hub, metrics } = fastify.rt
  const streams = new Streams(metrics.gauge('sse_clients_num', 'Open SSE connections'))
  const handle = sseHandler(hub, options, streams)

  // Its own context under the path: CORS and the any-body parser apply to the event stream only.
  await fastify.register(async (instance) => {
    // CORS is off unless allowedOrigins says who may read the stream from another origin.
    if (options.allowedOrigins !== undefined) {
      await instance.register(cors, {
        origin: corsOrigin(options.allowedOrigins),
        methods: 'GET, POST, OPTIONS',
        allowedHeaders: ALLOWED_HEADERS,
        credentials: true,
        strictPreflight: false,
        optionsSuccessStatus: 200
      })
    }
    // Pages on other sites may not open streams or send commands with the visitor's cookies.
    instance.addHook('onRequest', originGuard(options.allowedOrigins))
    acceptAnyBodyAsText(instance, options.bodyLimit)
    instance.route({
      method: ['GET', 'POST', 'OPTIONS', 'PUT', 'PATCH', 'DELETE', 'HEAD'],
      url: '/',
      prefixTrailingSlash: 'no-slash',
      exposeHeadRoute: false,
      errorHandler: unavailableErrorHandler(),
      handler: handle
    })
  }, { prefix: options.path })

  // Fastify does not end streaming responses on close: say goodbye and end them first.
  fastify.addHook('preClose', () => streams.shutdown())
}

/**
 * `@rt/sse`: AnyCable-compatible Server-Sent Events on `fastify.rt` (register
 * `@rt/core` first). GET for EventSource and curl, POST with JSONL subscribe
 * commands for fetch streaming.
 */
export const rtSse = fp(rtSsePlugin, { fastify: '5.x', name: '@rt/sse', dependencies: ['@rt/core'] })
export default rtSse
