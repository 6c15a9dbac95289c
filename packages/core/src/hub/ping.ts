import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyRequest } from 'fastify'
import type { PingPrecision } from './protocol.js'

/** AnyCable's per-connection ping options: `?pi=` (interval, whole seconds) and `?ptp=` (`s`, `ms` or `ns`). */
const PingQuerySchema = Type.Object({
  pi: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$' })),
  ptp: Type.Optional(Type.Union([Type.Literal('s'), Type.Literal('ms'), Type.Literal('ns')]))
})
const checkPingQuery = TypeCompiler.Compile(PingQuerySchema)

export interface PingOptions {
  /** Milliseconds between pings (`undefined`: the transport's default). */
  intervalMs: number | undefined
  precision: PingPrecision
}

export type ParsedPingOptions = { ok: true; ping: PingOptions } | { ok: false; error: string }

/** Reads `pi` and `ptp` from a request's query string; a bad value is an error to answer 400 with. */
export function pingOptions(request: FastifyRequest): ParsedPingOptions {
  const url = request.url
  const start = url.indexOf('?')
  const params = new URLSearchParams(start < 0 ? '' : url.slice(start + 1))
  const query: Record<string, string> = {}
  for (const name of ['pi', 'ptp']) {
    const values = params.getAll(name)
    if (values.length > 1) return { ok: false, error: `invalid query parameter ${name}: given more than once` }
    if (values.length === 1) query[name] = values[0]!
  }
  if (!checkPingQuery.Check(query)) {
    const name = checkPingQuery.Errors(query).First()!.path.slice(1)
    return { ok: false, error: name === 'pi' ? 'invalid query parameter pi: a whole number of seconds, 1 to 99999' : 'invalid query parameter ptp: s, ms or ns' }
  }
  return { ok: true, ping: { intervalMs: query.pi === undefined ? undefined : Number(query.pi) * 1000, precision: (query.ptp ?? 's') as PingPrecision } }
}
