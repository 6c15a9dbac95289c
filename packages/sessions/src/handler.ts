import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BROKER_UNAVAILABLE, acceptAnyBodyAsText, isSameOrigin, originMatcher, replyUnavailable, requestHost, unavailableErrorHandler } from '@rt/core'
import cors from '@fastify/cors'
import { ClientSession } from './client-session.js'
import { SSE_HEADERS, SseConnection } from './connection.js'
import type { ResolvedOptions } from './options.js'
import type { SessionRegistry } from './registry.js'
import { SESSION_ID_PATTERN, parseRequests, queryParser, type SessionQuery } from './requests.js'

type SessionRoute = FastifyRequest<{ Params: { id: string } }>

/** An error answer in Fastify's own shape, so every 4xx of the API reads the same. */
function refuse(reply: FastifyReply, status: number, message: string): FastifyReply {
  const error = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 413: 'Payload Too Large', 503: 'Service Unavailable' }[status]
  return reply.code(status).send({ statusCode: status, error, message })
}

/** Whether a GET asks for JSON long polling rather than an event stream (the default, as the original). */
function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? ''
  return accept.includes('application/json') && !accept.includes('text/event-stream')
}

/**
 * The routes of one registration, in their own encapsulated context: CORS, the
 * text body parser and the body limit apply to them only.
 */
export async function sessionRoutes(instance: FastifyInstance, options: ResolvedOptions, registry: SessionRegistry): Promise<void> {
  const allowed = options.allowedOrigins === undefined ? undefined : originMatcher(options.allowedOrigins)
  await instance.register(cors, {
    // Reflect the Origin, as the original does; credentials (cookies) only for configured origins.
    origin: (origin, callback) => callback(null, allowed === undefined || allowed(origin)),
    credentials: allowed !== undefined,
    methods: ['GET', 'POST', 'OPTIONS']
  })
  instance.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin
    if (origin === undefined) return
    if (allowed !== undefined) {
      if (!allowed(origin)) return refuse(reply, 403, 'origin not allowed')
      return
    }
    // Without allowedOrigins a page on another site must not act with the user's cookies (the browser
    // would send them along with a simple POST): secure by default.
    if (request.headers.cookie !== undefined && !isSameOrigin(origin, requestHost(request))) {
      return refuse(reply, 403, 'cross-origin requests with cookies need the allowedOrigins option')
    }
  })
  acceptAnyBodyAsText(instance, options.bodyLimit)
  const parseQuery = queryParser(options)

  /** The id and the query parameters, or the 400 answered. */
  function check(request: SessionRoute, reply: FastifyReply): SessionQuery | undefined {
    if (!SESSION_ID_PATTERN.test(request.params.id)) {
      refuse(reply, 400, 'the session id must be 22 to 100 characters of A-Z, a-z, 0-9, "_" and "-" (at least 128 random bits)')
      return undefined
    }
    const query = parseQuery(request.query)
    if (query.ok) return query.value
    refuse(reply, 400, query.error)
    return undefined
  }

  /** The session of the id for this request's identity (created when there is none), or the refusal answered. */
  async function acquire(request: SessionRoute, reply: FastifyReply, query: SessionQuery): Promise<ClientSession | undefined> {
    const session = await registry.open(request.params.id, request)
    if (!(session instanceof ClientSession)) {
      // Shutting down: the connection must not be kept for another request.
      if (session.status === 503) reply.header('connection', 'close')
      refuse(reply, session.status, session.message)
      return undefined
    }
    session.resizeQueue(query.pollQueue)
    return session
  }

  instance.get<{ Params: { id: string } }>('/:id', { errorHandler: unavailableErrorHandler() }, async (request: SessionRoute, reply) => {
    const query = check(request, reply)
    if (query === undefined) return reply
    const session = await acquire(request, reply, query)
    if (session === undefined) return reply
    if (wantsJson(request)) {
      const poll = session.startPoll(query.timeout)
      // A client that leaves before the answer takes nothing out of the queue.
      reply.raw.once('close', () => {
        if (!reply.sent) poll.cancel()
      })
      const answer = await poll.answer
      if (answer === undefined) return reply
      return reply.header('cache-control', 'no-store').send(answer)
    }
    reply.hijack()
    const response = reply.raw
    response.writeHead(200, { ...reply.getHeaders(), ...SSE_HEADERS } as Record<string, string>)
    const listener = new SseConnection(response, options.maxBufferedBytes)
    response.once('close', () => session.removeListener(listener))
    session.addListener(listener)
  })

  instance.post<{ Params: { id: string } }>('/:id', { errorHandler: unavailableErrorHandler() }, async (request: SessionRoute, reply) => {
    const query = check(request, reply)
    if (query === undefined) return reply
    const requests = parseRequests(request.body, instance.rt.limits)
    if (!requests.ok) return refuse(reply, requests.status ?? 400, requests.error)
    const session = await acquire(request, reply, query)
    if (session === undefined) return reply
    const responses = await session.run(requests.value)
    // The broker could not be reached for one of them: retrying later is the answer, not a per-request error.
    if (responses.some((response) => response.error === BROKER_UNAVAILABLE)) return replyUnavailable(reply)
    return reply.header('cache-control', 'no-store').send(responses)
  })
}
