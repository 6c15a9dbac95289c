import type { Identity } from './channels.js'
import { sortKeysDeep } from './protocol.js'

/**
 * The internal stream remote commands travel on, so every process (through
 * the broker's fan-out, Redis for clusters) sees each one.
 */
export const REMOTE_COMMANDS_STREAM = '$rt:remote'

/** `{"command":"disconnect","payload":{...}}` as the hub receives it from the broker. */
export interface RemoteDisconnect {
  /** The connection identifiers (the JSON of an identity) whose sessions end. */
  identifier: string
  reconnect: boolean
}

/**
 * The comparable form of an identity: JSON with every object's keys sorted, so
 * that `{"a":1,"b":2}` from a broadcaster matches an identity built as
 * `{b: 2, a: 1}` (AnyCable compares identifier strings; Go marshals maps with
 * sorted keys, so this is the same rule).
 */
export function canonicalIdentity(value: unknown): string {
  return JSON.stringify(sortKeysDeep(value))
}

/** The canonical identity a remote disconnect names; `undefined` when its identifier is not a JSON object. */
export function disconnectTarget(identifier: string): string | undefined {
  try {
    const value: unknown = JSON.parse(identifier)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? canonicalIdentity(value) : undefined
  } catch {
    return undefined
  }
}

/**
 * Remote disconnects of the last `ttlMs`, by canonical identity. Sessions that
 * are not held by any process when the command comes (a long-polling client
 * between two polls, a stored session waiting to be restored) are ended the
 * next time they are taken up, if they were created before the command.
 */
export class RecentDisconnects {
  private readonly entries = new Map<string, number>()

  constructor(private readonly ttlMs: number, private readonly limit = 10_000, private readonly now: () => number = Date.now) {}

  record(identity: string): void {
    this.entries.delete(identity)
    this.entries.set(identity, this.now())
    this.prune()
  }

  /** Whether a session of `identity` created at `createdAt` was disconnected since. */
  ended(identity: Identity, createdAt: number): boolean {
    if (this.entries.size === 0) return false
    this.prune()
    const at = this.entries.get(canonicalIdentity(identity))
    return at !== undefined && at >= createdAt
  }

  private prune(): void {
    const oldest = this.now() - this.ttlMs
    // Insertion order is age order (record() re-inserts): drop from the front.
    for (const [identity, at] of this.entries) {
      if (at >= oldest && this.entries.size <= this.limit) break
      this.entries.delete(identity)
    }
  }
}
