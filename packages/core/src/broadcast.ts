import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Broker, MessageMeta } from './broker.js'
import { isUnavailable, replyUnavailable } from './unavailable.js'
import { acceptAnyBodyAsText } from './raw-body.js'
import { safeEqual } from './signing.js'

const Publication = Type.Object({
  stream: Type.String({ minLength: 1 }),
  data: Type.String(),
  meta: Type.Optional(Type.Object({
    exclude_socket: Type.Optional(Type.String()),
    transient: Type.Optional(Type.Boolean()),
    broadcast_type: Type.Optional(Type.String())
  }))
})
type Publication = Static<typeof Publication>

const BroadcastBody = Type.Union([Publication, Type.Array(Publication, { minItems: 1 })])
const checkBody = TypeCompiler.Compile(BroadcastBody)
const checkPublication = TypeCompiler.Compile(Publication)

/** Decides whether a broadcast request may publish. */
export type BroadcastAuthorizer = (request: FastifyRequest) => boolean | Promise<boolean>

export interface BroadcastEndpointOptions {
  /** Route path. Default `/_broadcast` (AnyCable's `http_broadcast_path`). */
  path: string
  /** Bearer key (`Authorization: Bearer <key>`); with neither key nor `authorize`, the endpoint refuses everything. */
  key: string | undefined
  /** Custom check, run when the bearer key is absent or does not match. */
  authorize: BroadcastAuthorizer | undefined
  /** Largest accepted body in bytes (413 above it). */
  bodyLimit: number
}

/** Parses a publication's `data` string the way AnyCable does: JSON when it parses, the raw string otherwise. */
export function decodeBroadcastData(data: string): unknown {
  try {
    return JSON.parse(data) as unknown
  } catch {
    return data
  }
}

/**
 * `POST /_broadcast`, AnyCable's HTTP broadcaster: `{"stream","data","meta"?}` or
 * an array of them, answered 201. Unlike AnyCable a bad body gets 400 with a
 * reason instead of a silent 201, so a broken publisher is noticed.
 */
export async function broadcastEndpoint(instance: FastifyInstance, broker: Broker, options: BroadcastEndpointOptions): Promise<void> {
  acceptAnyBodyAsText(instance, options.bodyLimit)

  async function allowed(request: FastifyRequest): Promise<boolean> {
    if (options.key !== undefined) {
      const header = request.headers.authorization ?? ''
      if (header.startsWith('Bearer ') && safeEqual(header.slice(7), options.key)) return true
    }
    return options.authorize !== undefined && (await options.authorize(request)) === true
  }

  instance.route({
    method: ['POST'],
    url: options.path,
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      if (!(await allowed(request))) {
        return reply.code(401).send({ error: 'unauthorized', message: 'a valid broadcast key (Authorization: Bearer <key>) is required' })
      }
      let body: unknown
      try {
        // The catch-all parser gives a string, or no body at all (which JSON.parse refuses too).
        body = JSON.parse(request.body as string)
      } catch {
        return reply.code(400).send({ error: 'bad_request', message: 'body is not valid JSON' })
      }
      if (!checkBody.Check(body)) {
        return reply.code(400).send({ error: 'bad_request', message: describeInvalid(body) })
      }
      const publications: Publication[] = Array.isArray(body) ? body : [body]
      try {
        for (const publication of publications) {
          await broker.publish(publication.stream, decodeBroadcastData(publication.data), metaOptions(publication.meta))
        }
      } catch (error) {
        if (isUnavailable(error)) {
          request.log.warn({ err: error }, '@rt/core: the broker is unreachable; answered 503')
          return replyUnavailable(reply)
        }
        throw error
      }
      return reply.code(201).send()
    }
  })
  instance.route({
    method: ['GET', 'PUT', 'PATCH', 'DELETE'],
    url: options.path,
    handler: async (_request, reply) => {
      return reply.code(405).header('allow', 'POST').send({ error: 'method_not_allowed', message: 'use POST' })
    }
  })
}

function metaOptions(meta: MessageMeta | undefined): { meta: MessageMeta } | undefined {
  return meta === undefined ? undefined : { meta }
}

function describeInvalid(body: unknown): string {
  if (Array.isArray(body)) {
    if (body.length === 0) return 'an array of publications must not be empty'
    const index = body.findIndex((item) => !checkPublication.Check(item))
    return `publication ${index}: ${describePublication(body[index])}`
  }
  return describePublication(body)
}

function describePublication(value: unknown): string {
  const error = checkPublication.Errors(value).First()
  /* c8 ignore next */
  if (error === undefined) return 'invalid publication'
  const field = error.path === '' ? 'publication' : error.path.slice(1).replace(/\//g, '.')
  if (error.path === '') return 'expected an object {"stream","data","meta"?} or an array of them'
  return `${field}: ${error.message}`
}
