import { acceptAnyBodyAsText, isJournalable, isUnavailable, Journal, readManifest, replyUnavailable, requireRtCore } from '@rt/core'
import type { FastifyError, FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { errorBody, EventEncoder, json } from './encoder.js'
import { CategoryFeeds } from './feed.js'
import { publishHandler } from './handler/publish.js'
import { HeldPolls, subscribeHandler } from './handler/subscribe.js'
import { resolveOptions, type CategoryPollOptions as Options } from './options.js'

/** Options of {@link rtCategoryPoll} (the README lists each with its default). */
export type RtCategoryPollOptions = Options
/** @deprecated Renamed {@link RtCategoryPollOptions} (one naming scheme across rt); this alias goes before 1.0. */
export type CategoryPollOptions = Options
export type { PersistenceOptions, RequestHook } from './options.js'
export {
  DEFAULT_BODY_LIMIT, DEFAULT_MAX_EVENT_BUFFER_SIZE, DEFAULT_MAX_EVENTS_PER_RESPONSE, DEFAULT_MAX_TIMEOUT_SECONDS,
  DEFAULT_PUBLISH_PATH, DEFAULT_SUBSCRIBE_PATH, DEFAULT_SUBSCRIPTION_LINGER_MS
} from './options.js'
export { encodeEvent, eventsBody, timeoutBody, errorBody, EventEncoder, type BroadcastData, type CategoryEventJson } from './encoder.js'
export { categoryEventId, parseCategoryEventId, epochTag, type EventIdPosition } from './event-id.js'
export { parseSubscribeQuery, Errors as SubscribeErrors, type SubscribeQuery } from './handler/query.js'
export { parsePublishBody, PublishErrors } from './handler/publish.js'
export { timeoutTimestamp } from './handler/subscribe.js'
export { CategoryPollError, type CategoryEvent, type SubscribeOptions, type SubscriptionResponse, type PublishOptions, type PollOptions, type HeaderValues } from './client.js'

/** This package's name and supported `@rt/core` range, for the one-copy check at register. */
const manifest = readManifest(new URL('../package.json', import.meta.url))

async function categoryPollPlugin(fastify: FastifyInstance, raw: RtCategoryPollOptions): Promise<void> {
  requireRtCore(fastify, manifest)
  const options = resolveOptions(raw)
  const { broker } = fastify.rt
  // golongpoll's retention for the categories, before a journal loads them; other streams keep the broker's.
  const retention = { historyLimit: options.maxEventBufferSize, historyTtl: options.eventTtlMs / 1000 }
  const stopRetention = broker.setRetention?.(options.categories, retention)
  if (stopRetention === undefined) {
    fastify.log.warn("@rt/category-poll: the broker has no per-stream retention (setRetention): categories keep what it keeps of every stream")
  } else {
    fastify.addHook('onClose', async () => stopRetention())
  }
  if (options.persistence !== undefined) {
    if (!isJournalable(broker)) {
      throw new TypeError("@rt/category-poll: persistence needs @rt/core's default MemoryBroker (a Redis broker persists on its own)")
    }
    const journal = await Journal.open(broker, {
      ...options.persistence,
      onError: (error) => fastify.log.error({ err: error }, '@rt/category-poll: the persistence journal could not write')
    })
    const { report } = journal
    if (report.malformed > 0 || report.renewed > 0) {
      // Lines were dropped or messages may be lost: worth a warning (streams affected restart in a new epoch).
      fastify.log.warn({ file: journal.path, ...report }, `@rt/category-poll: journal loaded with ${report.malformed} unreadable line(s); ${report.renewed} stream(s) restarted in a new epoch${report.unclean ? ' after an unclean shutdown' : ''}`)
    } else {
      fastify.log.info({ file: journal.path, ...report }, '@rt/category-poll: journal loaded')
    }
    fastify.addHook('onClose', () => journal.close())
  }

  const held = new HeldPolls()
  // This plugin's own (encapsulated) context: bodies of any Content-Type are text here, errors are golongpoll JSON.
  acceptAnyBodyAsText(fastify, options.bodyLimit)
  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    reply.header('content-type', 'application/json')
    if (isUnavailable(error)) {
      request.log.warn({ err: error }, '@rt/category-poll: the broker is unreachable; answered 503')
      return replyUnavailable(reply, errorBody('Service temporarily unavailable, retry shortly.'))
    }
    const status = error.statusCode ?? 500
    if (status >= 400 && status < 500) return reply.code(status).send(json(errorBody(error.message)))
    request.log.error({ err: error }, '@rt/category-poll: request failed')
    return reply.code(500).send(json(errorBody('Internal server error.')))
  })
  const encoder = new EventEncoder(options.broadcastData)
  const feeds = new CategoryFeeds(broker, encoder, { lingerMs: options.subscriptionLingerMs })
  // After preClose has answered the held requests: their feeds linger, and go here.
  fastify.addHook('onClose', async () => feeds.close())
  const view = { maxEventBufferSize: options.maxEventBufferSize, eventTtlMs: options.eventTtlMs, maxEventsPerResponse: options.maxEventsPerResponse }
  fastify.route({
    // golongpoll reads only the query string, whatever the method; GET and POST cover its clients.
    method: ['GET', 'POST'],
    url: options.subscribePath,
    exposeHeadRoute: false,
    handler: subscribeHandler(options, { broker, feeds, view, encoder, deleteAfterRead: options.deleteAfterRead, held, log: fastify.log })
  })
  if (options.enablePublish) {
    fastify.route({
      method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      url: options.publishPath,
      exposeHeadRoute: false,
      handler: publishHandler(options, broker, fastify.rt.limits.maxJsonDepth)
    })
  }
  // Held requests are answered (timeout) before the server stops, instead of waiting out their timeout.
  fastify.addHook('preClose', async () => held.releaseAll())
}

/**
 * `@rt/category-poll`: golongpoll-compatible category long polling on
 * `@rt/core`'s broker. Register `@rt/core` first; a `prefix` applies to both routes.
 *
 * @example
 * await app.register(rtCore, { broadcastKey })
 * await app.register(rtCategoryPoll, { prefix: '/category', enablePublish: true, publishKey: broadcastKey })
 */
export const rtCategoryPoll = fp(categoryPollPlugin, {
  fastify: '5.x',
  name: '@rt/category-poll',
  dependencies: ['@rt/core'],
  encapsulate: true
})
/** @deprecated Renamed {@link rtCategoryPoll} (one naming scheme across rt); this alias goes before 1.0. */
export const categoryPoll = rtCategoryPoll
export default rtCategoryPoll
