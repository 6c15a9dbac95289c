import cors from '@fastify/cors'
import { acceptAnyBodyAsText, corsOrigin, originGuard, readManifest, requireRtCore, unavailableErrorHandler } from '@rt/core'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { HeadersSchema, POLL_ID_HEADER, QuerySchema, longPollHandler, type LongPollRequest } from './handler.js'
import { resolveOptions, type LongPollOptions as Options } from './options.js'
import { LongPollSessions } from './sessions.js'

/** Options of {@link rtLongPoll} (the README lists each with its default). */
export type RtLongPollOptions = Options
/** @deprecated Renamed {@link RtLongPollOptions} (one naming scheme across rt); this alias goes before 1.0. */
export type LongPollOptions = Options
export { DEFAULT_FLUSH_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_MAX_ANSWER_SIZE, DEFAULT_MAX_REQUEST_SIZE, DEFAULT_PATH, DEFAULT_POLL_INTERVAL } from './options.js'
export { encodeJsonl } from './encoder.js'
export { pollControlStream, type LongPollState } from './sessions.js'

/** AnyCable's CORS request headers, plus the two that long polling reads. */
const ALLOWED_HEADERS = [
  'Origin', 'X-Requested-With', 'X-Request-ID', 'Content-Type', 'Accept', 'X-CSRF-Token', 'Authorization',
  POLL_ID_HEADER, 'X-AnyCable-Restore-SID'
]

function corsOptions(allowedOrigins: string[]): Parameters<typeof cors>[1] {
  return {
    origin: corsOrigin(allowedOrigins),
    methods: ['POST', 'OPTIONS'],
    credentials: true,
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: [POLL_ID_HEADER]
  }
}

/** This package's name and supported `@rt/core` range, for the one-copy check at register. */
const manifest = readManifest(new URL('../package.json', import.meta.url))

async function longPollPlugin(fastify: FastifyInstance, raw: RtLongPollOptions): Promise<void> {
  requireRtCore(fastify, manifest)
  const options = resolveOptions(raw)
  const sessions = new LongPollSessions(fastify.rt.hub, options, fastify.rt.metrics, fastify.log)
  const handler = longPollHandler(sessions)
  // Own context under the path: any Content-Type is text here only, and CORS
  // (whose preflight route is `*` of its context) stays on this endpoint.
  await fastify.register(async (instance) => {
    // Pages on other sites may not connect or send commands with the visitor's cookies.
    instance.addHook('onRequest', originGuard(options.allowedOrigins))
    acceptAnyBodyAsText(instance, options.maxRequestSize)
    // CORS is off unless allowedOrigins says which other origins may poll.
    if (options.allowedOrigins !== undefined) await instance.register(cors, corsOptions(options.allowedOrigins))
    instance.post('/', { schema: { headers: HeadersSchema, querystring: QuerySchema }, errorHandler: unavailableErrorHandler() }, (request, reply) => handler(request as LongPollRequest, reply))
  }, { prefix: options.path })
  // Held polls are answered before the server stops accepting, with whatever they hold.
  fastify.addHook('preClose', () => sessions.drain())
  fastify.addHook('onClose', async () => sessions.close())
}

/**
 * `@rt/long-poll`: AnyCable-compatible long polling on `@rt/core`'s hub.
 * Register `@rt/core` first.
 */
export const rtLongPoll = fp(longPollPlugin, { fastify: '5.x', name: '@rt/long-poll', dependencies: ['@rt/core'] })
export default rtLongPoll
