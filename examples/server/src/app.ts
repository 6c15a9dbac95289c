import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyInstance } from 'fastify'
import { rtCore } from '@rt/core'
import { rtSessions } from '@rt/sessions'
import { rtSse } from '@rt/sse'
import { rtLongPoll } from '@rt/long-poll'
import { rtCategoryPoll } from '@rt/category-poll'
import { RedisBroker, RedisSessionStore } from '@rt/redis'
import { rtActionCable } from '@rt/action-cable'
import { ChatChannel } from './chat-channel.js'
import type { ExampleConfig } from './config.js'

const here = dirname(fileURLToPath(import.meta.url))
/** examples/chat/public, from examples/server/dist or examples/server/src. */
const chatRoot = join(here, '..', '..', 'chat', 'public')
/** The built @rt/client (its dist folder). */
const clientRoot = dirname(fileURLToPath(import.meta.resolve('@rt/client')))

/**
 * HTTP/2 needs TLS in browsers; with it, every tab's event stream or held poll is one stream of a single
 * connection instead of one of the six HTTP/1.1 connections a browser opens per origin. HTTP/1.1 stays on for
 * clients that do not negotiate h2 (curl --http1.1, some proxies).
 */
function serverOptions(config: ExampleConfig): Record<string, unknown> {
  if (config.tls === undefined) return {}
  if (!config.http2) return { https: config.tls }
  return { http2: true, https: { ...config.tls, allowHTTP1: true } }
}

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
  // Typed as the HTTP/1.1 instance every plugin's types expect: the plugins work unchanged over HTTP/2's compat API.
  const app = Fastify({ logger: options.logger ?? false, ...serverOptions(config) })
  const endpoints: Endpoint[] = []

  // --- Multi-node (@rt/redis): with REDIS_URL every process shares one Redis for streams and sessions,
  // so several servers behind a load balancer act as one. Without it: in memory, one process.
  const redis = config.redisUrl === undefined ? {} : {
    broker: new RedisBroker({ url: config.redisUrl, logger: app.log }),
    sessionStore: new RedisSessionStore({ url: config.redisUrl, logger: app.log })
  }
  app.addHook('onClose', async () => {
    await redis.broker?.close()
    await redis.sessionStore?.close()
  })
  // --- end of the Redis block

  await app.register(rtCore, {
    ...redis,
    broadcastKey: config.broadcastKey,
    metrics: true,
    // With an upstream Action Cable server, its ChatChannel (and every other channel) is served instead.
    channels: config.actionCable === undefined ? { ChatChannel } : {},
    publicStreams: true,
    streamsSecret: config.streamsSecret
  })
  endpoints.push({ method: 'POST', path: '/_broadcast', what: 'publish: {"stream","data"} with Authorization: Bearer <key>' })
  endpoints.push({ method: 'GET', path: '/metrics', what: 'Prometheus metrics' })

  // --- @rt/action-cable: with ACTION_CABLE_URL, a Rails app's channels over every transport below ---
  if (config.actionCable !== undefined) {
    await app.register(rtActionCable, { url: config.actionCable.url, origin: config.actionCable.origin, forwardHeaders: ['cookie', 'authorization'] })
  }
  // --- end @rt/action-cable -------------------------------------------------------------

  // --- @rt/sessions: the actioncable-to-eventsource API under /sessions -------------
  await app.register(rtSessions, { prefix: '/sessions' })
  endpoints.push({ method: 'GET', path: '/sessions/{id}', what: 'actioncable-to-eventsource: event stream, or long poll with Accept: application/json' })
  endpoints.push({ method: 'POST', path: '/sessions/{id}', what: 'actioncable-to-eventsource: [{identifier, subscribe|unsubscribe|send}]' })
  // --- end @rt/sessions ---------------------------------------------------------------

  // --- @rt/sse: AnyCable-compatible Server-Sent Events at /events ---------------------
  await app.register(rtSse)
  endpoints.push({ method: 'GET', path: '/events', what: 'SSE for EventSource and curl -N: ?stream=, ?channel=, ?identifier=, ?signed_stream= (Last-Event-ID resumes)' })
  endpoints.push({ method: 'POST', path: '/events', what: 'SSE with JSONL subscribe commands in the body (full Action Cable payloads)' })
  // --- end @rt/sse ----------------------------------------------------------------------

  // --- @rt/long-poll: AnyCable-compatible long polling at /lp --------------------------
  await app.register(rtLongPoll)
  endpoints.push({ method: 'POST', path: '/lp', what: 'AnyCable long polling: JSONL commands in, JSONL out; polls carry X-Anycable-Poll-ID' })
  // --- end @rt/long-poll ----------------------------------------------------------------

  // --- @rt/category-poll: golongpoll-compatible category long polling under /category --
  // Category X is stream X: a /_broadcast to stream X is a category X event, and back.
  await app.register(rtCategoryPoll, { prefix: '/category', enablePublish: true, publishKey: config.broadcastKey })
  endpoints.push({ method: 'GET', path: '/category/events', what: 'golongpoll subscribe: ?category=&timeout=&since_time=&last_id=' })
  endpoints.push({ method: 'POST', path: '/category/publish', what: 'golongpoll publish: {"category","data"} with Authorization: Bearer <key>' })
  // --- end @rt/category-poll ------------------------------------------------------------

  // The chat page at / and the @rt/client build it imports.
  await app.register(fastifyStatic, { root: chatRoot })
  await app.register(fastifyStatic, { root: clientRoot, prefix: '/vendor/rt-client/', decorateReply: false })
  endpoints.push({ method: 'GET', path: '/', what: 'the chat page (examples/chat)' })
  endpoints.push({ method: 'GET', path: '/endpoints', what: 'this list, as JSON' })
  app.get('/endpoints', async () => ({ name: 'rt example server', endpoints }))
  return { app, endpoints }
}
