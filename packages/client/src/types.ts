/** A read position in one stream. */
export interface Position {
  offset: number
  epoch: string
}

/** What to subscribe to: an Action Cable channel, a public stream or a signed stream. */
export type SubscriptionTarget =
  | { channel: string; params?: Record<string, unknown> }
  | { stream: string }
  | { signedStream: string }

/** Where a received message came from (absent for transmissions and transient broadcasts). */
export interface MessageMeta {
  stream?: string
  offset?: number
  epoch?: string
}

export interface SubscriptionCallbacks {
  /** A broadcast or transmission for this subscription. */
  received?(message: unknown, meta: MessageMeta): void
  /** The server confirmed the subscription (again after every reconnect). */
  connected?(): void
  /** The connection dropped; the consumer reconnects and resumes from its positions. */
  disconnected?(): void
  /** The server rejected the subscription; it is removed. */
  rejected?(): void
  /** The server no longer has the history since this subscription's position: messages may have been missed. */
  rejectedHistory?(): void
  /**
   * A presence event of this subscription's stream: `{type: 'join', id, info}`,
   * `{type: 'leave', id}`, or the answer to `presence()`: `{type: 'info',
   * total, records: [{id, info}]}` (`{type: 'error'}` when the server cannot).
   */
  presence?(event: PresenceEvent): void
}

/** A presence event or answer (AnyCable's extended protocol). */
export type PresenceEvent =
  | { type: 'join'; id: string; info?: unknown }
  | { type: 'leave'; id: string }
  | { type: 'info'; total: number; records: Array<{ id: string; info?: unknown }> }
  | { type: 'error' }

export type TransportName = 'sse' | 'long-poll'

/** The server messages the client understands (Action Cable, extended protocol). */
export interface ServerMessage {
  type?: string
  sid?: string
  identifier?: string
  message?: unknown
  stream_id?: string
  epoch?: string
  offset?: number
  reason?: string
  reconnect?: boolean
}

/** A client command (JSON line). */
export interface Command {
  command: 'subscribe' | 'unsubscribe' | 'message' | 'whisper' | 'join' | 'leave' | 'presence'
  identifier: string
  data?: unknown
  history?: { since?: number; streams?: Record<string, Position> }
  presence?: { id: string; info?: unknown }
}

/**
 * `fetch`'s `credentials` mode, declared here so that the client's types need no DOM lib
 * (a Node consumer compiles with `lib: ["ES2022"]` and `@types/node`).
 */
export type FetchCredentials = 'omit' | 'same-origin' | 'include'
