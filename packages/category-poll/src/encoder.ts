/**
 * golongpoll's wire format, byte for byte: compact event JSON with the key order
 * `timestamp, category, data, id`, and its hand-written bodies (note the space
 * after the colon in `{"error": …}` and `{"success": true}`).
 */
import { messageJson, type StreamMessage } from '@rt/core'
import { categoryEventId } from './event-id.js'

/** One event as golongpoll clients read it; `id` is a version-8 UUID carrying the position (see `event-id.ts`). */
export interface CategoryEventJson {
  timestamp: number
  category: string
  data: unknown
  id: string
}

/** Headers golongpoll sends with every subscribe answer, errors included. */
export const SUBSCRIBE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache, no-store, must-revalidate',
  pragma: 'no-cache',
  expires: '0'
}

/** Headers golongpoll sends with every publish answer (no cache headers). */
export const PUBLISH_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  'x-content-type-options': 'nosniff'
}

/** golongpoll's timeout text. */
export const TIMEOUT_TEXT = 'no events before timeout'

/**
 * How a message published through `/_broadcast` (AnyCable's `data` is a string
 * holding JSON, which core parses for Action Cable clients) shows to category clients:
 * - `string`: the JSON string as published (re-encoded from the parsed value),
 *   so clients that type `data` as a string (the Go `long_polling` wrapper) read it;
 * - `parsed`: the parsed value, as Action Cable clients get it.
 */
export type BroadcastData = 'string' | 'parsed'

/** The JSON text of an event's `data`: the broker's text as encoded once when it accepted the message, never serialised again. */
function eventData(message: StreamMessage, broadcastData: BroadcastData): string {
  // `messageJson` gives `null` for undefined data (possible through fastify.rt.publish), so the key is never missing.
  const json = messageJson(message)
  return broadcastData === 'string' && message.meta?.json_string === true ? JSON.stringify(json) : json
}

const EVENTS_OPEN = Buffer.from('{"events":[')
const EVENTS_CLOSE = Buffer.from(']}')
const EVENTS_CLOSE_INCOMPLETE = Buffer.from(`]${incompleteField(true)}}`)
const COMMA = 0x2c

/** Encodes events of one plugin's settings, each message once however many held polls receive it. */
export class EventEncoder {
  /**
   * Each event's JSON as UTF-8 bytes, encoded on first use. Answers are assembled from these by copying bytes:
   * joining the JSON strings and encoding the result to a Buffer again for every answer (golongpoll loops that
   * lag get a different run of events each) took ~7 µs for 20 events against ~5.5 µs, and the whole subscribe
   * path answered from history went from 21 to 10 µs with the other changes (bench/README.md, category polling).
   */
  private readonly encoded = new WeakMap<StreamMessage, Buffer>()

  constructor(private readonly broadcastData: BroadcastData = 'string') {}

  /** The JSON of one event, as bytes. */
  eventBytes(message: StreamMessage): Buffer {
    let bytes = this.encoded.get(message)
    if (bytes === undefined) {
      const json = `{"timestamp":${message.timestamp},"category":${JSON.stringify(message.stream)},"data":${eventData(message, this.broadcastData)},"id":"${categoryEventId(message)}"}`
      // Its own memory, not a slice of Buffer's shared 8 KB pool: these live as long as the message stays in
      // history, and a pooled slice would keep the whole pool (and the answers allocated next to it) alive.
      bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(json))
      bytes.write(json)
      this.encoded.set(message, bytes)
    }
    return bytes
  }

  /** The JSON of one event. */
  event(message: StreamMessage): string {
    return this.eventBytes(message).toString()
  }

  /** `{"events":[…]}` as bytes, oldest first; with `"incomplete":true` when events the cursor asked for are gone. */
  eventsBytes(messages: readonly StreamMessage[], incomplete = false): Buffer {
    const close = incomplete ? EVENTS_CLOSE_INCOMPLETE : EVENTS_CLOSE
    const events: Buffer[] = new Array<Buffer>(messages.length)
    let length = EVENTS_OPEN.length + Math.max(0, messages.length - 1) + close.length
    for (let i = 0; i < messages.length; i++) {
      const bytes = this.eventBytes(messages[i]!)
      events[i] = bytes
      length += bytes.length
    }
    const body = Buffer.allocUnsafe(length)
    let at = EVENTS_OPEN.copy(body, 0)
    for (let i = 0; i < events.length; i++) {
      if (i > 0) body[at++] = COMMA
      at += events[i]!.copy(body, at)
    }
    close.copy(body, at)
    return body
  }

  /** `{"events":[…]}`, oldest first; with `"incomplete":true` when events the cursor asked for are gone. */
  events(messages: readonly StreamMessage[], incomplete = false): string {
    return this.eventsBytes(messages, incomplete).toString()
  }
}

const defaultEncoder = new EventEncoder()

/** The JSON of one event with the default settings. */
export function encodeEvent(message: StreamMessage): string {
  return defaultEncoder.event(message)
}

/** `{"events":[…]}` with the default settings. */
export function eventsBody(messages: readonly StreamMessage[], incomplete = false): string {
  return defaultEncoder.events(messages, incomplete)
}

/** `{"timeout":"no events before timeout","timestamp":<ms>}`, with `"incomplete":true` when events the cursor asked for are gone. */
export function timeoutBody(timestamp: number, incomplete = false): string {
  return `{"timeout":"${TIMEOUT_TEXT}","timestamp":${timestamp}${incompleteField(incomplete)}}`
}

/** A field golongpoll's clients ignore (its Go client, JS client and the Go wrapper read only their own keys). */
function incompleteField(incomplete: boolean): string {
  return incomplete ? ',"incomplete":true' : ''
}

/** `{"error": "<reason>"}` */
export function errorBody(reason: string): string {
  return `{"error": ${JSON.stringify(reason)}}`
}

/** `{"success": true}` */
export const SUCCESS_BODY = '{"success": true}'

/**
 * A body as bytes: Fastify sends a Buffer as is, so `Content-Type` stays exactly
 * golongpoll's `application/json` (a string would get `; charset=utf-8` appended).
 */
export function json(body: string): Buffer {
  return Buffer.from(body)
}
