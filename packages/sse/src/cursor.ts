import type { StreamPosition } from '@rt/core'

/**
 * The resume position a client sends back (`Last-Event-ID`), in one of two forms:
 *
 * - AnyCable's single-stream id `offset/epoch/stream` (the stream name last,
 *   since it may contain `/`), e.g. `12/Yx3b_Q/chat_1`;
 * - rt's multi-stream cursor: `~` then one `offset/epoch/stream` entry per
 *   stream, separated by `,`, with epoch and stream percent-encoded
 *   (`encodeURIComponent`) so that `/`, `,` and `%` inside them stay
 *   unambiguous, e.g. `~12/Yx3b_Q/chat_1,4/Pq9aZw/team%2F7`.
 *
 * A single-stream id always starts with a digit, so the two never collide.
 */
export const CURSOR_PREFIX = '~'

/** Largest offset accepted from a client (offsets are JSON numbers: stay exact). */
const OFFSET = /^\d{1,15}$/

export type ParsedResume =
  | { ok: true; streams: Record<string, StreamPosition> }
  | { ok: false; error: string; tooMany?: true }

/** The multi-stream cursor of positions (entries sorted by stream name, so equal cursors are equal strings). */
export function formatCursor(positions: ReadonlyMap<string, StreamPosition>): string {
  const entries: string[] = []
  for (const stream of [...positions.keys()].sort()) {
    const { offset, epoch } = positions.get(stream)!
    entries.push(`${offset}/${encodeURIComponent(epoch)}/${encodeURIComponent(stream)}`)
  }
  return CURSOR_PREFIX + entries.join(',')
}

/**
 * Reads a `Last-Event-ID`. Like AnyCable, a single id with fewer than three
 * parts is ignored (no streams), and one whose offset is not a number is an
 * error (400). A multi-stream cursor must be well-formed throughout and name
 * at most `maxStreams` streams (`tooMany` otherwise, checked before any entry is parsed).
 */
export function parseResume(id: string, maxStreams = Infinity): ParsedResume {
  const streams: Record<string, StreamPosition> = Object.create(null) as Record<string, StreamPosition>
  if (!id.startsWith(CURSOR_PREFIX)) {
    const first = id.indexOf('/')
    const second = first < 0 ? -1 : id.indexOf('/', first + 1)
    if (second < 0) return { ok: true, streams }
    const offset = id.slice(0, first)
    const epoch = id.slice(first + 1, second)
    const stream = id.slice(second + 1)
    if (!OFFSET.test(offset)) return { ok: false, error: `invalid Last-Event-ID offset: ${offset}` }
    if (epoch === '' || stream === '') return { ok: false, error: 'invalid Last-Event-ID: empty epoch or stream' }
    streams[stream] = { offset: Number(offset), epoch }
    return { ok: true, streams }
  }
  const entries = id.slice(CURSOR_PREFIX.length).split(',', maxStreams === Infinity ? undefined : maxStreams + 1)
  if (entries.length > maxStreams) return { ok: false, error: `Last-Event-ID names more than ${maxStreams} streams`, tooMany: true }
  for (const entry of entries) {
    const parts = entry.split('/')
    if (parts.length !== 3 || !OFFSET.test(parts[0]!) || parts[1] === '' || parts[2] === '') {
      return { ok: false, error: `invalid Last-Event-ID cursor entry: ${entry}` }
    }
    let epoch: string
    let stream: string
    try {
      epoch = decodeURIComponent(parts[1]!)
      stream = decodeURIComponent(parts[2]!)
    } catch {
      return { ok: false, error: `invalid Last-Event-ID cursor entry: ${entry}` }
    }
    streams[stream] = { offset: Number(parts[0]), epoch }
  }
  return { ok: true, streams }
}
