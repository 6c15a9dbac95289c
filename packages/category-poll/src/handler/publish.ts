/**
 * `POST publishPath` with `{"category","data"}`: golongpoll's PublishHandler,
 * guarded by a bearer key or the `beforePublish` hook. Any Content-Type is read
 * as JSON, as golongpoll does.
 */
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { DEFAULT_LIMITS, parseBoundedJson, safeEqual, type Broker } from '@rt/core'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { errorBody, json, PUBLISH_HEADERS, SUCCESS_BODY } from '../encoder.js'
import type { ResolvedOptions } from '../options.js'
import { passes } from './guard.js'
import { MAX_CATEGORY_BYTES } from './query.js'

/** The body after Go-style case-insensitive key matching. `null` category is Go's zero value: missing. */
export const PublishBodySchema = Type.Object({
  category: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  data: Type.Optional(Type.Unknown())
})
const checkBody = TypeCompiler.Compile(PublishBodySchema)

/** golongpoll's publish error messages. */
export const PublishErrors = {
  method: 'Invalid HTTP Method. Only POST allowed.',
  json: 'Invalid POST body json.',
  category: "Invalid or missing 'category' arg, must be 1-1024 characters long.",
  data: "Invalid or missing 'data' arg, must be non-nil.",
  /** Not golongpoll's (Go's decoder stops at 10,000 levels): JSON that deep could be parsed but not written out again. */
  depth: (max: number) => `Invalid POST body json: nested deeper than ${max} levels.`,
  unauthorized: 'Unauthorized: a valid key (Authorization: Bearer <key>) is required.'
} as const

/**
 * Parses a publish body. Keys match case-insensitively (the last of a key's
 * spellings wins), as Go's `encoding/json` does; unknown keys are ignored.
 * Unlike Go, bytes after the JSON value are an error rather than ignored, and
 * the body may nest at most `maxDepth` levels.
 */
export function parsePublishBody(text: unknown, maxDepth = DEFAULT_LIMITS.maxJsonDepth): { category: string; data: unknown } | { error: string } {
  const parsed = parseBoundedJson(typeof text === 'string' ? text : '', maxDepth)
  if (!parsed.ok) return { error: parsed.error === 'malformed JSON' ? PublishErrors.json : PublishErrors.depth(maxDepth) }
  const value = parsed.value
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: PublishErrors.json }
  const body: Record<string, unknown> = {}
  for (const [key, field] of Object.entries(value)) {
    const name = key.toLowerCase()
    if (name === 'category' || name === 'data') body[name] = field
  }
  if (!checkBody.Check(body)) return { error: PublishErrors.json }
  const category = body.category ?? ''
  const bytes = Buffer.byteLength(category, 'utf8')
  if (bytes < 1 || bytes > MAX_CATEGORY_BYTES) return { error: PublishErrors.category }
  if (body.data === undefined || body.data === null) return { error: PublishErrors.data }
  return { category, data: body.data }
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  return header !== undefined && header.startsWith('Bearer ') ? header.slice(7) : undefined
}

/** The publish route handler (every method is routed here so that the wrong ones get golongpoll's 405). */
export function publishHandler(options: ResolvedOptions, broker: Broker, maxJsonDepth = DEFAULT_LIMITS.maxJsonDepth) {
  async function allowed(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const key = bearer(request)
    if (options.publishKey !== undefined && key !== undefined && safeEqual(key, options.publishKey)) return true
    if (options.beforePublish !== undefined) return passes(options.beforePublish, request, reply)
    await reply.code(401).header('www-authenticate', 'Bearer').send(json(errorBody(PublishErrors.unauthorized)))
    return false
  }

  return async function publish(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    reply.headers(PUBLISH_HEADERS)
    if (request.method !== 'POST') return reply.code(405).header('allow', 'POST').send(json(errorBody(PublishErrors.method)))
    if (!(await allowed(request, reply))) return reply
    const body = parsePublishBody(request.body, maxJsonDepth)
    if ('error' in body) return reply.code(400).send(json(errorBody(body.error)))
    await broker.publish(body.category, body.data)
    return reply.code(200).send(json(SUCCESS_BODY))
  }
}
