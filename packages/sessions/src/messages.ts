import type { Outgoing } from '@rt/core'
import { toIdentifierObject, type IdentifierObject } from './identifier.js'

/** `{"type":"joined","id":...}`: the session got a new EventSource listener. */
export interface JoinedMessage {
  type: 'joined'
  /** The session id of the URL. */
  id: string
}

/** An Action Cable event of one subscription, as the original's clients read it. */
export interface CableEvent {
  type: 'connected' | 'disconnected' | 'rejected' | 'received'
  /** The background session's id (absent in long-poll answers, where it is redundant). */
  session_id?: string
  /** The subscription's id: one per identifier for the session's lifetime. */
  chan_id: string
  /** Unique within the session: a counter (also the SSE `id`). */
  msg_id: string
  /** When the message was published (broadcasts) or emitted, as an RFC 3339 UTC time. */
  time: string
  identifier: IdentifierObject
  /** The payload (`received` only). */
  message?: unknown
}

/** One request of a POST body. */
export type SessionRequest =
  | { identifier: IdentifierObject; subscribe: true }
  | { identifier: IdentifierObject; unsubscribe: true }
  | { identifier: IdentifierObject; send: Record<string, unknown> }

/** The answer to one request, in the order of the requests. */
export interface SessionResponse {
  error?: string
  session_id: string
  chan_id: string
}

/** A long-poll answer. */
export interface PollAnswer {
  messages: CableEvent[]
  session_id: string
  /** Messages dropped since the last answer because the queue was full. */
  dropped: number
  /** Messages still queued after this answer. */
  queue_length: number
}

/** The parts of a hub message a session's event needs, or `undefined` for what this API does not show (welcome, history replies). */
export function translate(outgoing: Outgoing): { type: CableEvent['type']; identifier: string; message?: unknown; timestamp: number } | undefined {
  const message = outgoing.message
  if (!('identifier' in message)) return undefined
  const timestamp = outgoing.source?.timestamp ?? Date.now()
  // Also as stream notices (`broadcast_type`), which carry a `message`: @rt/action-cable's upstream socket was lost and re-opened.
  if (message.type === 'confirm_subscription') return { type: 'connected', identifier: message.identifier, timestamp }
  if (message.type === 'reject_subscription') return { type: 'rejected', identifier: message.identifier, timestamp }
  // Messages may have been missed (the upstream connection dropped, or history no longer covers the gap).
  if (message.type === 'reject_history') return { type: 'disconnected', identifier: message.identifier, timestamp }
  if ('message' in message) return { type: 'received', identifier: message.identifier, message: message.message, timestamp }
  return undefined
}

/** Builds the event of a subscription. */
export function cableEvent(
  type: CableEvent['type'],
  identifier: string,
  ids: { chan_id: string; msg_id: string },
  timestamp: number,
  message?: unknown
): CableEvent {
  const event: CableEvent = { type, chan_id: ids.chan_id, msg_id: ids.msg_id, time: new Date(timestamp).toISOString(), identifier: toIdentifierObject(identifier) }
  if (type === 'received') event.message = message
  return event
}
