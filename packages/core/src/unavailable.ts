import type { FastifyReply, FastifyRequest } from 'fastify'
import { BrokerUnavailableError } from './broker.js'

/**
 * Seconds a client is asked to wait (`Retry-After`) while the broker or the
 * session store cannot be reached: long enough not to hammer a backend that is
 * restarting, short enough that a session survives within a 5 s keepalive.
 */
export const UNAVAILABLE_RETRY_AFTER = 1

/** The reason a command fails with when the broker could not be reached: transports answer 503 for it. */
export const BROKER_UNAVAILABLE = 'broker unavailable'

/** The body of every 503 of an outage: what happened and what to do, and no internal detail. */
export const UNAVAILABLE_BODY = { error: 'unavailable', message: 'temporarily unavailable, retry shortly' } as const

/**
 * Whether an error means a backing service (the broker or the session store,
 * which reject with `BrokerUnavailableError` when they cannot be reached) is
 * unreachable, rather than a bug: the request may succeed if retried.
 */
export function isUnavailable(error: unknown): error is BrokerUnavailableError {
  return error instanceof BrokerUnavailableError
}

/**
 * Answers `503` with `Retry-After` and a short JSON reason. `body` replaces the
 * default `{"error":"unavailable","message":…}` (a string is sent as it is) for
 * protocols with their own error shape; it must not carry the error's message (it names hosts and ports).
 */
export function replyUnavailable(reply: FastifyReply, body: unknown = UNAVAILABLE_BODY): FastifyReply {
  return reply
    .code(503)
    .header('retry-after', String(UNAVAILABLE_RETRY_AFTER))
    .type('application/json; charset=utf-8')
    .send(typeof body === 'string' ? body : JSON.stringify(body))
}

/**
 * A route `errorHandler` for every rt endpoint: an outage (see
 * {@link isUnavailable}) is logged and answered 503 by {@link replyUnavailable};
 * any other error goes on to the application's error handler unchanged.
 *
 * @example
 * instance.route({ method: 'POST', url: '/', errorHandler: unavailableErrorHandler(), handler })
 */
export function unavailableErrorHandler(body?: unknown) {
  return function handleUnavailable(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
    if (!isUnavailable(error)) throw error
    request.log.warn({ err: error }, '@rt: a backing service is unreachable; answered 503')
    return replyUnavailable(reply, body)
  }
}
