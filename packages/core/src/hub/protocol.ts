import { messageJson, type StreamMessage } from '../broker.js'

/** `{"type":"welcome"}`, with the extended protocol's session fields. */
export interface WelcomeMessage {
  type: 'welcome'
  sid?: string
  restored?: boolean
  restored_ids?: string[]
}

export interface PingMessage {
  type: 'ping'
  message: number
}

export interface IdentifierReply {
  type: 'confirm_subscription' | 'reject_subscription' | 'confirm_history' | 'reject_history'
  identifier: string
}

export interface DisconnectMessage {
  type: 'disconnect'
  reason: string
  reconnect: boolean
}

/** A broadcast or a transmission: no `type` unless the publication set `broadcast_type`. */
export interface DataMessage {
  type?: string
  identifier: string
  message: unknown
  stream_id?: string
  epoch?: string
  offset?: number
}

/** Every message the server sends to an Action Cable client. */
export type ServerMessage = WelcomeMessage | PingMessage | IdentifierReply | DisconnectMessage | DataMessage

/** Turns a server message into a transport's wire form. */
export type Encoder<T> = (message: ServerMessage) => T

/**
 * A server message on its way to one or many sessions. A broadcast to a stream
 * becomes one `Outgoing` per identifier, shared by every session subscribed
 * with that identifier, so each wire format encodes it once ("encode once,
 * write many").
 */
export class Outgoing {
  private encodings: Map<Encoder<unknown>, unknown> | undefined
  private lastEncoder: Encoder<unknown> | undefined
  private lastEncoded: unknown

  constructor(
    readonly message: ServerMessage,
    /** The stream message behind a broadcast (absent for control messages and transmissions). */
    readonly source?: StreamMessage
  ) {}

  /** The message in `encoder`'s format, computed on first use and then shared. */
  encode<T>(encoder: Encoder<T>): T {
    // The encoder of the previous call answers without a map lookup: every connection of a fan-out asks for the same one.
    if (this.lastEncoder === encoder) return this.lastEncoded as T
    const encoded = this.encodeOnce(encoder)
    this.lastEncoder = encoder
    this.lastEncoded = encoded
    return encoded
  }

  private encodeOnce<T>(encoder: Encoder<T>): T {
    this.encodings ??= new Map()
    if (this.encodings.has(encoder)) return this.encodings.get(encoder) as T
    const encoded = encoder(this.message)
    this.encodings.set(encoder, encoded)
    return encoded
  }
}

/** AnyCable's `ping_timestamp_precision`: Unix seconds, milliseconds or nanoseconds. */
export type PingPrecision = 's' | 'ms' | 'ns'

/** Ping timestamps: Unix seconds by default, as AnyCable's `ping_timestamp_precision` (nanoseconds at millisecond resolution). */
export function pingMessage(now = Date.now(), precision: PingPrecision = 's'): PingMessage {
  return { type: 'ping', message: precision === 'ms' ? now : precision === 'ns' ? now * 1_000_000 : Math.floor(now / 1000) }
}

/**
 * The JSON text of the payload of replies made from a stored message: the text
 * the broker encoded when it accepted the message, so the reply is written
 * with it instead of serialising the payload again.
 */
const payloadJson = new WeakMap<ServerMessage, string>()

/** The broadcast reply for one identifier (extended protocol: with the stream position). */
export function broadcastReply(identifier: string, message: StreamMessage): DataMessage {
  const reply: DataMessage = { identifier, message: message.data }
  payloadJson.set(reply, messageJson(message))
  if (message.meta?.broadcast_type !== undefined) reply.type = message.meta.broadcast_type
  if (message.offset > 0) {
    reply.stream_id = message.stream
    reply.epoch = message.epoch
    reply.offset = message.offset
  }
  return reply
}

/**
 * A server message's JSON. A broadcast reply is written around its stored
 * payload text (keys in the order `broadcastReply` sets them), so the payload
 * is never serialised again; anything else is `JSON.stringify`'d. Every
 * transport writes Action Cable messages through this.
 */
export function encodeServerMessage(message: ServerMessage): string {
  const payload = payloadJson.get(message)
  if (payload === undefined) return JSON.stringify(message)
  const reply = message as DataMessage
  let json = `{"identifier":${JSON.stringify(reply.identifier)},"message":${payload}`
  if (reply.type !== undefined) json += `,"type":${JSON.stringify(reply.type)}`
  if (reply.stream_id !== undefined) json += `,"stream_id":${JSON.stringify(reply.stream_id)},"epoch":${JSON.stringify(reply.epoch)},"offset":${reply.offset}`
  return `${json}}`
}

/** The JSON of a data message's `message` part: its stored text for a broadcast reply, otherwise encoded now (`null` when absent). */
export function encodeDataPayload(message: ServerMessage): string {
  return payloadJson.get(message) ?? JSON.stringify((message as { message?: unknown }).message ?? null)
}

/** `{"type":"disconnect",...}`; `reason` and `reconnect` are always present, as in AnyCable. */
export function disconnectMessage(reason: string, reconnect: boolean): DisconnectMessage {
  return { type: 'disconnect', reason, reconnect }
}

/**
 * Serialises an identifier the way AnyCable generates them (Go's json.Marshal of
 * a map): keys sorted, no spaces. Client-sent identifiers are never re-serialised.
 */
export function buildIdentifier(fields: Record<string, unknown>): string {
  const sorted: Record<string, unknown> = {}
  for (const key of Object.keys(fields).sort()) sorted[key] = fields[key]
  return JSON.stringify(sorted)
}

/** Sorts object keys at every depth, so equal objects give equal JSON whatever their key order. */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep)
  if (typeof value !== 'object' || value === null) return value
  const sorted: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) sorted[key] = sortKeysDeep((value as Record<string, unknown>)[key])
  return sorted
}

/** The stream that carries remote commands to a session; `$rt:` streams are internal and never public. */
export const controlStream = (sid: string): string => `$rt:session:${sid}`

/** Whether a stream name is reserved for rt's own use. */
export const isInternalStream = (stream: string): boolean => stream.startsWith('$rt:')
