import { buildIdentifier } from '@rt/core'

/** An identifier as this API's clients send it: a JSON object with a string `channel`. */
export type IdentifierObject = { channel: string } & Record<string, unknown>

/** Sorts object keys at every depth, so equal objects give equal JSON whatever their key order. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical)
  if (typeof value !== 'object' || value === null) return value
  const sorted: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) sorted[key] = canonical((value as Record<string, unknown>)[key])
  return sorted
}

/**
 * The Action Cable identifier string of an identifier object: the same object
 * (whatever its key order) always gives the same string, which the hub uses as
 * the subscription's key.
 */
export function toIdentifierString(identifier: IdentifierObject): string {
  return buildIdentifier(canonical(identifier) as Record<string, unknown>)
}

/** Back from an identifier string (always one this package built) to the object clients see. */
export function toIdentifierObject(identifier: string): IdentifierObject {
  return JSON.parse(identifier) as IdentifierObject
}
