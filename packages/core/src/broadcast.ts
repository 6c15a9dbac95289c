import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Broker, MessageMeta, PublishOptions } from './broker.js'
import { DEFAULT_LIMITS, nameProblem, parseBoundedJson, type Limits } from './limits.js'
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
  /** Nesting depth of `data`, stream name length, publications per body. */
  limits: Pick<Limits, 'maxJsonDepth' | 'maxNameLength' | 'maxPublicationsPerBody'>
  /** Runs a remote `disconnect` command: ends the sessions of those identifiers on every process. */
  disconnect: (identifier: string, reconnect: boolean) => Promise<void>
}

/**
 * Parses a publication's `data` string the way AnyCable does: JSON when it
 * parses, the raw string otherwise. `undefined` when it is JSON nested deeper
 * than `maxDepth` (refused: it could be parsed but not written out again).
 */
export function decodeBroadcastData(data: string, maxDepth = DEFAULT_LIMITS.maxJsonDepth): { value: unknown; json: string | undefined } | undefined {
  const parsed = parseBoundedJson(data, maxDepth)
  if (parsed.ok) return { value: parsed.value, json: LINE_BREAK.test(data) ? undefined : data }
  if (parsed.error === 'malformed JSON' || !isJson(data)) return { value: data, json: undefined }
  return undefined
}

/** Whether text is JSON (parsing deep text is safe in V8; only encoding it again recurses). */
function isJson(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** JSON text with a line break cannot be stored as is: JSON Lines readers would split it. */
const LINE_BREAK = /[\r\n]/

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
      const { limits } = options
      // The catch-all parser gives a string, or no body at all (which JSON.parse refuses too).
      const parsed = parseBoundedJson(typeof request.body === 'string' ? request.body : '', limits.maxJsonDepth)
      if (!parsed.ok) {
        return reply.code(400).send({ error: 'bad_request', message: parsed.error === 'malformed JSON' ? 'body is not valid JSON' : `body: ${parsed.error}` })
      }
      const body = parsed.value
      if (Array.isArray(body) && body.length > limits.maxPublicationsPerBody) {
        return reply.code(413).send({ error: 'too_large', message: `more than ${limits.maxPublicationsPerBody} publications in one body` })
      }
      if (!checkBody.Check(body)) {
        return reply.code(400).send({ error: 'bad_request', message: describeInvalid(body) })
      }
      const items: Array<Publication | RemoteCommand> = Array.isArray(body) ? body : [body]
      // Every publication is checked before anything is published: a refused body publishes nothing.
      const decoded: Array<{ value: unknown; json: string | undefined } | undefined> = []
      for (const [index, item] of items.entries()) {
        if (!('stream' in item)) {
          decoded.push(undefined)
          continue
        }
        const at = items.length > 1 ? `publication ${index}: ` : ''
        const problem = nameProblem(item.stream, limits)
        if (problem !== undefined) return reply.code(400).send({ error: 'bad_request', message: `${at}${problem}` })
        const data = decodeBroadcastData(item.data, limits.maxJsonDepth)
        if (data === undefined) return reply.code(400).send({ error: 'bad_request', message: `${at}data nested deeper than ${limits.maxJsonDepth} levels` })
        decoded.push(data)
      }
      try {
        for (const [index, item] of items.entries()) {
          // AnyCable's order: an object with a stream is a publication, anything else a remote command.
          if ('stream' in item) {
            const { value, json } = decoded[index]!
            // Marks AnyCable data that was a JSON string of a non-string, for readers that want the string back (category polling).
            const meta = typeof value === 'string' ? item.meta : { ...item.meta, json_string: true }
            await broker.publish(item.stream, value, publishOptions(meta, json))
          } else await options.disconnect(item.payload.identifier, item.payload.reconnect === true)
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

function publishOptions(meta: MessageMeta | undefined, json: string | undefined): PublishOptions | undefined {
  if (meta === undefined && json === undefined) return undefined
  const options: PublishOptions = {}
  if (meta !== undefined) options.meta = meta
  if (json !== undefined) options.json = json
  return options
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
