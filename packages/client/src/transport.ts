import type { Command, FetchCredentials, ServerMessage, TransportName } from './types.js'

/** Settings every transport reads. */
export interface TransportSettings {
  url: string
  /** Appended to every request's path: `?jid=<token>` or empty. */
  query: string
  ssePath: string
  longPollPath: string
  headers: Record<string, string>
  credentials: FetchCredentials
  fetch: typeof fetch
  sseWelcomeTimeout: number
  staleTimeout: number
}

/** Why a transport stopped. */
export interface TransportEnd {
  error: Error
  /** The server sent `retry:` (ms). */
  retry?: number | undefined
  /** The server refused this client (401): do not reconnect. */
  fatal?: boolean
  /** Whether the transport got as far as a welcome. */
  welcomed: boolean
}

/** What a transport reports to its consumer. */
export interface TransportHost {
  receive(message: ServerMessage): void
  ended(transport: Transport, end: TransportEnd): void
}

export interface Transport {
  readonly name: TransportName
  /** Connects, subscribing with `commands` in the same request. */
  open(commands: Command[]): void
  /** Sends commands on the open connection. */
  send(commands: Command[]): void
  close(): void
}

export const jsonl = (commands: Command[]): string => commands.map((command) => JSON.stringify(command)).join('\n')

/** Decodes each non-empty JSON line; a line that is not JSON is skipped. */
export function decodeLines(text: string, receive: (message: ServerMessage) => void): void {
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    let message: ServerMessage
    try {
      message = JSON.parse(line) as ServerMessage
    } catch {
      continue
    }
    receive(message)
  }
}
