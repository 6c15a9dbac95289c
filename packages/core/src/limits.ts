/**
 * The bounds on what rt parses from a client or a publisher, checked in one
 * place so every entry point (core's broadcast endpoint and hub, and every
 * transport) refuses the same inputs the same way.
 *
 * Why bound nesting: V8's `JSON.parse` accepts any depth, but `JSON.stringify`
 * (and any recursive walk) overflows the stack around a few thousand levels, so
 * a value that was parsed could not be written out again: one such message
 * would break every reader of its stream, and a deep identifier would break the
 * session store. Depth is checked on the text, before parsing, without recursion.
 */

/** The bounds; every field is optional in options and filled from {@link DEFAULT_LIMITS}. */
export interface Limits {
  /**
   * Deepest nesting of arrays and objects in any JSON text rt parses: message
   * data, command lines, identifiers, action payloads. Default 100, Ruby's
   * `JSON.parse` `max_nesting` (what a Rails app behind Action Cable accepts).
   */
  maxJsonDepth: number
  /** Longest stream (or golongpoll category) name, in characters. Default 1024: names are keys, not payloads. */
  maxNameLength: number
  /**
   * Longest channel identifier, in characters. Default 8192: room for a signed
   * stream name of a {@link maxNameLength} stream and channel params.
   */
  maxIdentifierLength: number
  /** Most commands in one request body (SSE POST, long-poll, the sessions API). Default 100. */
  maxCommandsPerBody: number
  /** Most stream positions in one resume cursor (`Last-Event-ID`, a `history.streams` request). Default 256. */
  maxCursorStreams: number
  /** Most publications in one `/_broadcast` body. Default 1000. */
  maxPublicationsPerBody: number
}

/**
 * The deepest JSON a broker stores, whoever publishes (an HTTP entry point or
 * the app's own `publish`), and the largest `maxJsonDepth` allowed: far below
 * where recursive encoders overflow the stack (a few thousand levels), so a
 * stored message can always be written out again, alone or inside a session's
 * saved state.
 */
export const MAX_STORED_JSON_DEPTH = 1000

/** The defaults, with their reasons on {@link Limits}. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxJsonDepth: 100,
  maxNameLength: 1024,
  maxIdentifierLength: 8192,
  maxCommandsPerBody: 100,
  maxCursorStreams: 256,
  maxPublicationsPerBody: 1000
})

/** Validates limit options (at register time) and fills in the defaults. */
export function resolveLimits(options: Partial<Limits> | undefined, prefix = '@rt/core'): Limits {
  if (options === undefined) return { ...DEFAULT_LIMITS }
  if (typeof options !== 'object' || options === null) throw new TypeError(`${prefix}: limits must be an object`)
  const limits = { ...DEFAULT_LIMITS }
  for (const [name, value] of Object.entries(options)) {
    if (!Object.hasOwn(DEFAULT_LIMITS, name)) throw new TypeError(`${prefix}: limits.${name} is not a known limit`)
    if (value === undefined) continue
    if (!Number.isInteger(value) || (value as number) < 1) throw new TypeError(`${prefix}: limits.${name} must be a positive integer`)
    if (name === 'maxJsonDepth' && (value as number) > MAX_STORED_JSON_DEPTH) {
      throw new TypeError(`${prefix}: limits.maxJsonDepth must be at most ${MAX_STORED_JSON_DEPTH}`)
    }
    limits[name as keyof Limits] = value as number
  }
  return limits
}

/** Whether JSON text nests arrays/objects deeper than `maxDepth` (brackets inside strings do not count). */
export function exceedsJsonDepth(text: string, maxDepth: number): boolean {
  // Valid JSON of depth d needs 2d brackets: short texts cannot be too deep (and invalid ones fail to parse anyway).
  if (text.length <= maxDepth * 2) return false
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // Jump to the closing quote (native search; strings are most of a body): one preceded by an odd run of backslashes is escaped.
      for (;;) {
        const end = text.indexOf('"', i + 1)
        if (end < 0) return false
        let backslashes = 0
        while (text.charCodeAt(end - 1 - backslashes) === 0x5c) backslashes++
        i = end
        if (backslashes % 2 === 0) break
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return true
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    }
  }
  return false
}

export type BoundedJson = { ok: true; value: unknown } | { ok: false; error: 'malformed JSON' | `JSON nested deeper than ${number} levels` }

/** `JSON.parse` that refuses text nested deeper than `maxDepth` (checked first, on the text). */
export function parseBoundedJson(text: string, maxDepth: number): BoundedJson {
  if (exceedsJsonDepth(text, maxDepth)) return { ok: false, error: `JSON nested deeper than ${maxDepth} levels` }
  try {
    return { ok: true, value: JSON.parse(text) as unknown }
  } catch {
    return { ok: false, error: 'malformed JSON' }
  }
}

/** Why a stream or category name is refused (`undefined` when it is fine). `what` names it in the reason. */
export function nameProblem(name: string, limits: Pick<Limits, 'maxNameLength'>, what = 'stream name'): string | undefined {
  return name.length > limits.maxNameLength ? `${what} longer than ${limits.maxNameLength} characters` : undefined
}

/** Why an identifier is refused: too long or too deeply nested (`undefined` when it is fine). */
export function identifierProblem(identifier: string, limits: Pick<Limits, 'maxIdentifierLength' | 'maxJsonDepth'>): string | undefined {
  if (identifier.length > limits.maxIdentifierLength) return `identifier longer than ${limits.maxIdentifierLength} characters`
  if (exceedsJsonDepth(identifier, limits.maxJsonDepth)) return `identifier nested deeper than ${limits.maxJsonDepth} levels`
  return undefined
}

/**
 * The JSON text of a value to publish, encoded once when the message is
 * accepted: readers write this text and never serialise the value again.
 * `undefined` is written as `null`. A value JSON cannot encode (a cycle, a
 * BigInt, nesting past the stack) or nested deeper than
 * {@link MAX_STORED_JSON_DEPTH} is refused here, before it is stored.
 */
export function encodeMessageData(data: unknown): string {
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (error) {
    throw new TypeError(`@rt/core: message data cannot be encoded as JSON (${(error as Error).message})`)
  }
  if (json === undefined) return 'null'
  if (exceedsJsonDepth(json, MAX_STORED_JSON_DEPTH)) {
    throw new TypeError(`@rt/core: message data is nested deeper than ${MAX_STORED_JSON_DEPTH} levels`)
  }
  return json
}
