import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BrokerUnavailableError, type Broker, type MessageMeta } from './broker.js'
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

/** AnyCable's remote command: `{"command":"disconnect","payload":{"identifier":"<identifiers JSON>","reconnect":false}}`. */
const RemoteCommand = Type.Object({
  command: Type.Literal('disconnect'),
  payload: Type.Object({
    identifier: Type.String({ minLength: 1 }),
    reconnect: Type.Optional(Type.Boolean())
  })
})
type RemoteCommand = Static<typeof RemoteCommand>

const Item = Type.Union([Publication, RemoteCommand])
const BroadcastBody = Type.Union([Item, Type.Array(Item, { minItems: 1 })])
const checkBody = TypeCompiler.Compile(BroadcastBody)
const checkPublication = TypeCompiler.Compile(Publication)
const checkRemoteCommand = TypeCompiler.Compile(RemoteCommand)

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
  /** Runs a remote `disconnect` command: ends the sessions of those identifiers on every process. */
  disconnect: (identifier: string, reconnect: boolean) => Promise<void>
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
      const items: Array<Publication | RemoteCommand> = Array.isArray(body) ? body : [body]
      try {
        for (const item of items) {
          // AnyCable's order: an object with a stream is a publication, anything else a remote command.
          if ('stream' in item) await broker.publish(item.stream, decodeBroadcastData(item.data), metaOptions(item.meta))
          else await options.disconnect(item.payload.identifier, item.payload.reconnect === true)
        }
      } catch (error) {
        if (error instanceof BrokerUnavailableError) {
          return reply.code(503).send({ error: 'unavailable', message: error.message })
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
    const index = body.findIndex((item) => !checkPublication.Check(item) && !checkRemoteCommand.Check(item))
    return `publication ${index}: ${describeItem(body[index])}`
  }
  return describeItem(body)
}

function describeItem(value: unknown): string {
  if (typeof value !== 'object' || value === null || 'stream' in value || !('command' in value)) return describePublication(value)
  const error = checkRemoteCommand.Errors(value).First()!
  return `${error.path.slice(1).replace(/\//g, '.')}: ${error.message}`
}

function describePublication(value: unknown): string {
  const error = checkPublication.Errors(value).First()
  /* c8 ignore next */
  if (error === undefined) return 'invalid publication'
  const field = error.path === '' ? 'publication' : error.path.slice(1).replace(/\//g, '.')
  if (error.path === '') return 'expected an object {"stream","data","meta"?} or an array of them'
  return `${field}: ${error.message}`
}
