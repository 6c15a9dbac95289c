import { encodeDataPayload, encodeServerMessage, formatMessageId, type ServerMessage } from '@rt/core'

/**
 * `retry:` sent with a `disconnect` that says `reconnect: false`: one year in
 * milliseconds, so that EventSource does not come back (AnyCable's value).
 */
export const RETRY_NO_RECONNECT = 31_536_000_000

/** A keep-alive comment: what raw-mode connections get instead of `event: ping`. */
export const COMMENT_PING = Buffer.from(':\n\n')

/** The fields of one Server-Sent Event, in the order AnyCable writes them. */
export interface SseFields {
  event?: string | undefined
  data: string
  id?: string | undefined
  retry?: number | undefined
}

/** CR, LF and NUL cannot appear in `event:` or `id:` (they would end the line, or make EventSource drop the id). */
const UNSAFE_FIELD = /[\r\n\0]/

/** The `data:` lines of a payload: every line break (`\r\n`, `\r`, `\n`) starts a new `data:` line. */
export function dataLines(data: string): string {
  return `data: ${data.replace(/\r\n|\r|\n/g, '\ndata: ')}\n`
}

/**
 * One event without its closing blank line, so that a connection can append a
 * cursor `id:` of its own before ending it. `event` is dropped when it is
 * unsafe (a typed message always has a plain type); so is `id`.
 */
export function eventHead(fields: Omit<SseFields, 'id' | 'retry'>): string {
  const event = fields.event !== undefined && !UNSAFE_FIELD.test(fields.event) ? `event: ${fields.event}\n` : ''
  return event + dataLines(fields.data)
}

/** The closing lines of an event: `id:` (when safe), `retry:`, then the blank line. */
export function eventTail(id: string | undefined, retry?: number): string {
  const idLine = id !== undefined && !UNSAFE_FIELD.test(id) ? `id: ${id}\n` : ''
  return `${idLine}${retry === undefined ? '' : `retry: ${retry}\n`}\n`
}

/** One whole event: `event`, `data`, `id`, `retry`, blank line. */
export function serialize(fields: SseFields): string {
  return eventHead(fields) + eventTail(fields.id, fields.retry)
}

/** The type of a message (`undefined` for broadcasts and transmissions). */
export function messageType(message: ServerMessage): string | undefined {
  return (message as { type?: string }).type
}

/**
 * AnyCable's message id, `offset/epoch/stream`, for a message that carries a
 * stream position; `undefined` otherwise (control messages, transmissions,
 * transient broadcasts).
 */
export function messageId(message: ServerMessage): string | undefined {
  if (!hasPosition(message)) return undefined
  const { stream_id: stream, epoch, offset } = message as { stream_id: string; epoch: string; offset: number }
  return formatMessageId({ offset, epoch, stream })
}

/** Whether a message carries a stream position (what {@link messageId} makes an id of), without formatting it. */
export function hasPosition(message: ServerMessage): boolean {
  const { stream_id: stream, epoch, offset } = message as { stream_id?: string; epoch?: string; offset?: number }
  return stream !== undefined && stream !== '' && epoch !== undefined && epoch !== '' && offset !== undefined && offset > 0
}

function retryOf(message: ServerMessage): number | undefined {
  return messageType(message) === 'disconnect' && (message as { reconnect?: boolean }).reconnect === false ? RETRY_NO_RECONNECT : undefined
}

/**
 * GET: typed messages carry their whole JSON; a data message carries only its
 * `message` part, a string going out as is (Turbo Stream HTML), anything else
 * as JSON.
 */
function getData(message: ServerMessage): string {
  if (messageType(message) !== undefined) return encodeServerMessage(message)
  const payload = (message as { message?: unknown }).message
  return typeof payload === 'string' ? payload : encodeDataPayload(message)
}

/*
 * The encoders below are module-level functions on purpose: `Outgoing.encode`
 * memoises per encoder function, so a broadcast shared by many connections is
 * encoded once per format and every connection writes the same Buffer.
 */

/** GET (EventSource) frame: unwrapped data, AnyCable's `id:`. */
export function encodeGetFrame(message: ServerMessage): Buffer {
  return Buffer.from(eventHead({ event: messageType(message), data: getData(message) }) + eventTail(messageId(message), retryOf(message)))
}

/** GET frame without `id:`/`retry:` and the closing blank line, for connections that write a cursor `id:` of their own. */
export function encodeGetHead(message: ServerMessage): Buffer {
  return Buffer.from(eventHead({ event: messageType(message), data: getData(message) }))
}

/** POST frame: the full Action Cable message as `data:`, AnyCable's `id:`. */
export function encodePostFrame(message: ServerMessage): Buffer {
  return Buffer.from(serialize({ event: messageType(message), data: encodeServerMessage(message), id: messageId(message), retry: retryOf(message) }))
}
