import { buildIdentifier, sortKeysDeep } from '@rt/core'

/** An identifier as this API's clients send it: a JSON object with a string `channel`. */
export type IdentifierObject = { channel: string } & Record<string, unknown>

/**
 * The Action Cable identifier string of an identifier object: the same object
 * (whatever its key order) always gives the same string, which the hub uses as
 * the subscription's key.
 */
export function toIdentifierString(identifier: IdentifierObject): string {
  return buildIdentifier(sortKeysDeep(identifier) as Record<string, unknown>)
}

/** Back from an identifier string (always one this package built) to the object clients see. */
export function toIdentifierObject(identifier: string): IdentifierObject {
  return JSON.parse(identifier) as IdentifierObject
}
