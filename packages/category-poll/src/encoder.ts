/**
 * golongpoll's wire format, byte for byte: compact event JSON with the key order
 * `timestamp, category, data, id`, and its hand-written bodies (note the space
 * after the colon in `{"error": …}` and `{"success": true}`).
 */
import { formatMessageId, messageJson, type StreamMessage } from '@rt/core'

/** One event as golongpoll clients read it; `id` is the rt message id (`offset/epoch/stream`). */
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

// One encoding per message, however many held polls receive it.
const encoded = new WeakMap<StreamMessage, string>()

/** The JSON of one event, encoded once per message. */
export function encodeEvent(message: StreamMessage): string {
  let json = encoded.get(message)
  if (json === undefined) {
    // The data as the broker encoded it when it accepted the message (undefined data is null): never serialised again.
    json = `{"timestamp":${message.timestamp},"category":${JSON.stringify(message.stream)},"data":${messageJson(message)},"id":${JSON.stringify(formatMessageId(message))}}`
    encoded.set(message, json)
  }
  return json
}

/** `{"events":[…]}`, oldest first. */
export function eventsBody(messages: readonly StreamMessage[]): string {
  return `{"events":[${messages.map(encodeEvent).join(',')}]}`
}

/** `{"timeout":"no events before timeout","timestamp":<ms>}` */
export function timeoutBody(timestamp: number): string {
  return `{"timeout":"${TIMEOUT_TEXT}","timestamp":${timestamp}}`
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
