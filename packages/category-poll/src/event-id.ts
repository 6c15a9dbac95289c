/**
 * Category event ids: RFC 9562 version-8 UUIDs that carry the event's position.
 *
 * golongpoll's Go client decodes every `id` as a UUID, so the id cannot be the
 * rt message id (`offset/epoch/stream`). A version-8 UUID has 122 free bits:
 * enough for the epoch and the offset. The stream is not in it — a subscribe
 * names its category, and the category is the stream.
 *
 * ```
 * EEEEEEEE-EEEE-8000-8OOO-OOOOOOOOOOOO
 * E  48 bits  the epoch: its 6 bytes when it is an 8-character base64url epoch
 *             (every epoch rt's brokers make), otherwise the first 6 bytes of its SHA-256
 * 8  version 8; `000` reserved (zero)
 * 8  variant 0b10, then the offset's top 2 bits (zero: offsets stay below 2^53)
 * O  60 bits  the offset, hex
 * ```
 *
 * So the SSE / Action Cable id `offset/epoch/stream` and the category id map
 * both ways: hex-decode `E` and base64url-encode it to get the epoch, read `O`
 * as hex for the offset, and take the stream from the category.
 */
import { createHash } from 'node:crypto'
import type { StreamPosition } from '@rt/core'

/** rt's epochs: 6 random bytes, base64url (`newEpoch()` in `@rt/core`). */
const PACKED_EPOCH = /^[A-Za-z0-9_-]{8}$/
/** gofrs/uuid `FromString`'s forms: canonical, `{braced}`, `urn:uuid:`, or 32 bare hex digits (any case). */
const UUID_FORMS = /^(?:urn:uuid:)?(\{)?([0-9a-fA-F]{8})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{12})(\})?$/
/** The position-carrying layout, as 32 lowercase hex digits. */
const POSITION_UUID = /^([0-9a-f]{12})8000([89ab])([0-9a-f]{15})$/
/** The same, as {@link categoryEventId} writes it (what clients send back): read without normalizing first. */
const CANONICAL_POSITION_UUID = /^([0-9a-f]{8})-([0-9a-f]{4})-8000-([89ab])([0-9a-f]{3})-([0-9a-f]{12})$/

/**
 * Epochs are few (one per stream history) and polls many: every poll with a `last_id` converts its tag back to an
 * epoch, and every event id needs its epoch's tag. Both conversions go through Buffers; memoized here
 * (about 1 % of the server's CPU in the golongpoll comparison, bench/README.md). Bounded: cleared when full,
 * since tags also come from clients.
 */
const MEMO_LIMIT = 1024
const tags = new Map<string, string>()
const epochs = new Map<string, string>()

function memo(map: Map<string, string>, key: string, make: (key: string) => string): string {
  let value = map.get(key)
  if (value === undefined) {
    if (map.size >= MEMO_LIMIT) map.clear()
    value = make(key)
    map.set(key, value)
  }
  return value
}

function tagOf(epoch: string): string {
  if (PACKED_EPOCH.test(epoch)) return Buffer.from(epoch, 'base64url').toString('hex')
  return createHash('sha256').update(epoch).digest('hex').slice(0, 12)
}

/** The 12 hex digits of an epoch in an event id. */
export function epochTag(epoch: string): string {
  return memo(tags, epoch, tagOf)
}

/** The event id of a message of a category. */
export function categoryEventId(message: StreamPosition): string {
  const tag = epochTag(message.epoch)
  const offset = message.offset.toString(16).padStart(15, '0')
  return `${tag.slice(0, 8)}-${tag.slice(8)}-8000-8${offset.slice(0, 3)}-${offset.slice(3)}`
}

/** A UUID in any form gofrs/uuid accepts, as 32 lowercase hex digits; `undefined` when it is not a UUID. */
export function normalizeUuid(text: string): string | undefined {
  const match = UUID_FORMS.exec(text)
  if (match === null || (match[1] === undefined) !== (match[7] === undefined)) return undefined
  return match.slice(2, 7).join('').toLowerCase()
}

/** What a position-carrying event id says: the offset and the epoch's tag (see {@link epochTag}). */
export interface EventIdPosition {
  offset: number
  epochTag: string
}

/**
 * Reads the position out of an event id (any UUID form); `undefined` for a UUID
 * that is not one of ours (golongpoll's own v4 ids, for one) or not a UUID.
 */
export function parseCategoryEventId(id: string): EventIdPosition | undefined {
  const canonical = CANONICAL_POSITION_UUID.exec(id)
  if (canonical !== null) return position(canonical[1]! + canonical[2]!, canonical[3]!, canonical[4]! + canonical[5]!)
  const hex = normalizeUuid(id)
  const match = hex === undefined ? null : POSITION_UUID.exec(hex)
  return match === null ? undefined : position(match[1]!, match[2]!, match[3]!)
}

/** The position of an id's parts: the tag, the variant digit (it holds the offset's top 2 bits) and 15 hex digits. */
function position(tag: string, variant: string, offsetHex: string): EventIdPosition | undefined {
  const offset = Number.parseInt(offsetHex, 16) + (Number.parseInt(variant, 16) - 8) * 2 ** 60
  if (offset < 1 || !Number.isSafeInteger(offset)) return undefined
  return { offset, epochTag: tag }
}

/** The epoch an event id names, when it was packed whole (rt's own epochs): base64url of the tag. */
export function packedEpoch(tag: string): string {
  return memo(epochs, tag, (hex) => Buffer.from(hex, 'hex').toString('base64url'))
}
