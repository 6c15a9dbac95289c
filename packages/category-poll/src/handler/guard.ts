import type { FastifyReply, FastifyRequest } from 'fastify'
import { errorBody, json } from '../encoder.js'
import type { RequestHook } from '../options.js'

/**
 * Runs a before-hook. `true` lets the request through; `false` means it was
 * answered: by the hook itself, or with `403 {"error": "Forbidden."}` when the
 * hook returned `false` without replying.
 */
export async function passes(hook: RequestHook, request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
  const verdict = await hook(request, reply)
  if (reply.sent) return false
  if (verdict !== false) return true
  await reply.code(403).header('content-type', 'application/json').send(json(errorBody('Forbidden.')))
  return false
}
