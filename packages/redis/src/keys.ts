/**
 * Redis names of one stream. Every name carries the stream in a hash tag
 * (`{stream}`), so all of a stream's keys live in one Cluster slot and one Lua
 * script may touch them together. The suffixes have one length, so two streams
 * never share a name whatever characters they contain.
 */
export interface StreamKeys {
  /**
   * Hash: `epoch`, `offset` (last assigned), `ts` (last timestamp), `evicted` (highest offset dropped by retention),
   * on a Cluster `owner` (replication id of the master that started the epoch).
   */
  meta: string
  /** Redis Stream of retained messages, entry id `<offset>-0`, fields `t` (ms) and `b` (the JSON body). */
  history: string
  /** Pub/sub channel the publish script fans messages out on. */
  channel: string
}

export function streamKeys(prefix: string, stream: string): StreamKeys {
  const base = `${prefix}{${stream}}`
  return { meta: `${base}:m`, history: `${base}:h`, channel: `${base}:p` }
}

/** The key of one session (a hash: `lease`, `json`). */
export function sessionKey(prefix: string, sid: string): string {
  return `${prefix}session:${sid}`
}

/**
 * Redis names of one stream's presence set, in the stream's hash tag like its
 * other keys (one Cluster slot, one script).
 */
export interface PresenceKeys {
  /** Hash: sid → presence id. */
  sessions: string
  /** Sorted set: sid → deadline (ms). */
  deadlines: string
  /** Hash: presence id → info JSON (`""` for none). */
  records: string
  /** Hash: presence id → number of sessions. */
  counts: string
}

export function presenceKeys(prefix: string, stream: string): PresenceKeys {
  const base = `${prefix}{${stream}}`
  return { sessions: `${base}:s`, deadlines: `${base}:d`, records: `${base}:r`, counts: `${base}:c` }
}

/** Sorted set: stream → when its presence set next has an entry due (a hint for the sweep), in a slot of its own. */
export function presenceDueKey(prefix: string): string {
  return `${prefix}presence:due`
}
