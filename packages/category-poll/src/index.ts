import { acceptAnyBodyAsText, isUnavailable, Journal, MemoryBroker, replyUnavailable } from '@rt/core'
import type { FastifyError, FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { errorBody, json } from './encoder.js'
import { publishHandler } from './handler/publish.js'
import { HeldPolls, subscribeHandler } from './handler/subscribe.js'
import { resolveOptions, type CategoryPollOptions } from './options.js'

export type { CategoryPollOptions, PersistenceOptions, RequestHook } from './options.js'
export {
  DEFAULT_BODY_LIMIT, DEFAULT_MAX_EVENT_BUFFER_SIZE, DEFAULT_MAX_EVENTS_PER_RESPONSE, DEFAULT_MAX_TIMEOUT_SECONDS,
  DEFAULT_PUBLISH_PATH, DEFAULT_SUBSCRIBE_PATH
} from './options.js'
export { encodeEvent, eventsBody, timeoutBody, errorBody, type CategoryEventJson } from './encoder.js'
export { parseSubscribeQuery, Errors as SubscribeErrors, type SubscribeQuery } from './handler/query.js'
export { parsePublishBody, PublishErrors } from './handler/publish.js'
export { timeoutTimestamp } from './handler/subscribe.js'
export { CategoryPollError, type CategoryEvent, type SubscribeOptions, type SubscriptionResponse, type PublishOptions, type PollOptions, type HeaderValues } from './client.js'

async function categoryPollPlugin(fastify: FastifyInstance, raw: CategoryPollOptions): Promise<void> {
  const options = resolveOptions(raw)
  const { broker } = fastify.rt
  if (options.persistence !== undefined) {
    if (!(broker instanceof MemoryBroker)) {
      throw new TypeError("@rt/category-poll: persistence needs @rt/core's default MemoryBroker (a Redis broker persists on its own)")
    }
    const journal = await Journal.open(broker, {
      ...options.persistence,
      onError: (error) => fastify.log.error({ err: error }, '@rt/category-poll: the persistence journal could not write')
    })
    fastify.log.info({ file: journal.path, ...journal.report }, '@rt/category-poll: journal loaded')
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
  const view = { maxEventBufferSize: options.maxEventBufferSize, eventTtlMs: options.eventTtlMs, maxEventsPerResponse: options.maxEventsPerResponse }
  fastify.route({
    // golongpoll reads only the query string, whatever the method; GET and POST cover its clients.
    method: ['GET', 'POST'],
    url: options.subscribePath,
    exposeHeadRoute: false,
    handler: subscribeHandler(options, { broker, view, deleteAfterRead: options.deleteAfterRead, held, log: fastify.log })
  })
  if (options.enablePublish) {
    fastify.route({
      method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      url: options.publishPath,
      exposeHeadRoute: false,
      handler: publishHandler(options, broker)
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
 * await app.register(categoryPoll, { prefix: '/category', enablePublish: true, publishKey: broadcastKey })
 */
export const categoryPoll = fp(categoryPollPlugin, {
  fastify: '5.x',
  name: '@rt/category-poll',
  dependencies: ['@rt/core'],
  encapsulate: true
})
export default categoryPoll
