import { encodeServerMessage, type Encoder, type ServerMessage } from '@rt/core'

/**
 * The long-polling wire format: JSON Lines, one message per line, every line
 * ending with `\n` (AnyCable's client splits the body on newlines). A single
 * module-level function, so `Outgoing.encode` memoises on it and a broadcast is
 * serialised once for every session that receives it.
 */
export const encodeJsonl: Encoder<Buffer> = (message: ServerMessage) => Buffer.from(`${encodeServerMessage(message)}\n`)

/** A line that is not a session message (per-request errors): encoded where it is written. */
export function jsonlLine(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value)}\n`)
}

/** `Content-Type` of every answer. */
export const JSONL_CONTENT_TYPE = 'application/x-ndjson; charset=utf-8'
