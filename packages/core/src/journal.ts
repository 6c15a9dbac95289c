/**
 * An append-only JSON Lines journal that lets a {@link MemoryBroker} survive a
 * restart with its streams, offsets, epochs and timestamps.
 *
 * File format: one JSON object per line, `\n`-terminated.
 * - message:  `{"stream","offset","epoch","timestamp","data","meta"?}`
 * - position: `{"stream","epoch","lastOffset"}` (written by compaction, so a
 *   stream whose newest messages were removed never reuses an offset)
 * - remove:   `{"remove":<stream>,"epoch","offsets":[…]}` (delete-after-read)
 * - drop:     `{"drop":<stream>}` (the stream's whole state was dropped)
 * - header:   `{"journal":1,"flushIntervalMs"}`, the first line of every
 *   compacted file: the flush policy the writer ran with
 * - shutdown: `{"shutdown":"clean"}`, the last line written by `close()`
 * - golongpoll's FilePersistor lines `{"timestamp","category","data","id"}`
 *   are read too (never written): each category becomes a stream in a fresh
 *   epoch, its events ordered by timestamp and numbered from offset 1.
 *
 * Loading tolerates what a crash or another writer leaves behind: blank lines,
 * a torn (unparseable) last line, lines of any length, and lines out of order
 * (messages are ordered by offset, the latest record of an offset wins, a
 * retired epoch's late lines are ignored). The loaded state is written back
 * compacted when the journal opens, so the file is always canonical after a
 * start.
 *
 * An id is never reused for another message. When the file may have lost
 * accepted messages — the writer buffered records (`flushIntervalMs > 0`) and
 * did not shut down cleanly, or a line is torn or broken — the affected
 * streams come back in a new epoch (their retained messages keep their
 * offsets, relabelled), so a client resuming from a position the file lost is
 * told its history is gone (`reject_history`, a gap) instead of receiving a
 * different message under an id it knows. A broken line names its stream when
 * its beginning survived; otherwise every stream is affected. A clean shutdown,
 * or an unbuffered writer with intact lines, keeps every epoch: nothing was lost.
 *
 * Flush policy (`flushIntervalMs`):
 * - `0` (default): every record is written to the file (`write(2)`) before
 *   `publish()` returns. A process crash loses nothing that was published;
 *   an OS crash or power loss can lose what the kernel had not written yet,
 *   unless `fsync` is set (then every write is followed by `fsync(2)`).
 * - `> 0`: records are buffered in memory and written every `flushIntervalMs`
 *   (and on `flush()`/`close()`). A process crash loses at most the records
 *   of the last interval; throughput is higher because writes are batched.
 *
 * Compaction rewrites the file from the broker's retained state (expired,
 * evicted, removed and dropped messages disappear) into a temporary file that
 * is renamed over the journal, so a crash during compaction leaves either the
 * old or the new file, never a mix. It runs on open and whenever the bytes
 * appended since the last compaction exceed both `compactAfterBytes` and the
 * size of the compacted file (so the file stays within about twice its live
 * size).
 *
 * One process owns a journal file at a time.
 */
import { closeSync, createReadStream, existsSync, fsyncSync, openSync, renameSync, statSync, writeSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { messageJson, type Broker, type MessageMeta, type StreamMessage } from './broker.js'
import { encodeMessageData, MAX_STORED_JSON_DEPTH, parseBoundedJson } from './limits.js'
import { newEpoch, type MemoryBroker, type RestoredStream } from './memory-broker.js'

export type { BrokerObserver } from './memory-broker.js'

/** Options of {@link Journal.open}. */
export interface JournalOptions {
  /** Path of the JSONL file; created when missing (its directory must exist). */
  file: string
  /**
   * `0` (default) writes every record before `publish()` returns: nothing
   * published is lost when the process crashes. A positive number of ms batches
   * records and writes them at that interval: a crash loses at most one interval.
   */
  flushIntervalMs?: number
  /** `fsync(2)` after every write, so records also survive an OS crash or power loss. Default false. */
  fsync?: boolean
  /** Appended bytes after which the file is compacted (when also larger than the compacted file). Default 1 MiB. */
  compactAfterBytes?: number
  /** Which streams to persist. Default: every stream. */
  streams?: (stream: string) => boolean
  /** Called when writing fails (disk full, file removed…); the broker keeps running. Default: a process warning. */
  onError?: (error: Error) => void
}

/** What loading a journal file found. */
export interface JournalLoadReport {
  /** Non-blank lines read, besides the header and the shutdown marker. */
  lines: number
  /** Blank lines skipped. */
  blank: number
  /** Lines that are not JSON or not a known record (a torn last line is one): skipped. */
  malformed: number
  /** Records of an epoch that a later record had retired, or golongpoll events of a stream that also has rt records: ignored. */
  stale: number
  /** golongpoll FilePersistor events read. */
  golongpoll: number
  /** Streams and messages restored. */
  streams: number
  messages: number
  /** The previous writer buffered records and did not shut down cleanly: what it had not written is lost. */
  unclean: boolean
  /** Streams restored in a new epoch because the file may have lost some of their messages. */
  renewed: number
}

const Meta = Type.Object({
  exclude_socket: Type.Optional(Type.String()),
  transient: Type.Optional(Type.Boolean()),
  broadcast_type: Type.Optional(Type.String()),
  json_string: Type.Optional(Type.Boolean())
})
const MessageRecord = Type.Object({
  stream: Type.String({ minLength: 1 }),
  offset: Type.Integer({ minimum: 1 }),
  epoch: Type.String({ minLength: 1 }),
  timestamp: Type.Number(),
  data: Type.Unknown(),
  meta: Type.Optional(Meta)
})
const PositionRecord = Type.Object({
  stream: Type.String({ minLength: 1 }),
  epoch: Type.String({ minLength: 1 }),
  lastOffset: Type.Integer({ minimum: 0 })
})
const RemoveRecord = Type.Object({
  remove: Type.String({ minLength: 1 }),
  epoch: Type.String({ minLength: 1 }),
  offsets: Type.Array(Type.Integer({ minimum: 1 }))
})
const DropRecord = Type.Object({ drop: Type.String({ minLength: 1 }) })
const HeaderRecord = Type.Object({ journal: Type.Literal(1), flushIntervalMs: Type.Integer({ minimum: 0 }) })
const ShutdownRecord = Type.Object({ shutdown: Type.Literal('clean') })
const SHUTDOWN_LINE = `${JSON.stringify({ shutdown: 'clean' })}\n`
/** golongpoll v1.3 `Event` as its FilePersistor writes it. */
const GolongpollRecord = Type.Object({
  timestamp: Type.Integer(),
  category: Type.String({ minLength: 1 }),
  data: Type.Unknown(),
  id: Type.String()
})
const isMessage = TypeCompiler.Compile(MessageRecord)
const isPosition = TypeCompiler.Compile(PositionRecord)
const isRemove = TypeCompiler.Compile(RemoveRecord)
const isDrop = TypeCompiler.Compile(DropRecord)
const isHeader = TypeCompiler.Compile(HeaderRecord)
const isShutdown = TypeCompiler.Compile(ShutdownRecord)
const isGolongpoll = TypeCompiler.Compile(GolongpollRecord)

/** One stream's state while a file is read. */
interface Loading {
  epoch: string
  lastOffset: number
  messages: Map<number, StreamMessage>
  removed: Set<number>
  /** Epochs superseded (by a drop or a newer epoch): their late lines are ignored. */
  retired: Set<string>
  /** The stream's last record was a drop. */
  dropped: boolean
}

/** Reads a journal file (rt's or golongpoll's format) into restorable streams. A missing file is an empty journal. */
export async function readJournal(file: string): Promise<{ streams: RestoredStream[]; report: JournalLoadReport }> {
  const report: JournalLoadReport = { lines: 0, blank: 0, malformed: 0, stale: 0, golongpoll: 0, streams: 0, messages: 0, unclean: false, renewed: 0 }
  const loading = new Map<string, Loading>()
  const golongpoll = new Map<string, StreamMessage[]>()
  /** Streams named by broken lines; `true` when a broken line named none (every stream is affected). */
  const damaged = new Set<string>()
  let damagedUnknown = false
  let buffered = false
  let clean = false
  if (existsSync(file)) {
    // readline keeps no line-length limit (golongpoll's Scanner stops the whole load at 64 KiB).
    const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })
    for await (const line of lines) {
      if (line.trim() === '') {
        report.blank++
        continue
      }
      // A record nests its data one level down: data as deep as any broker stores still loads, anything deeper is malformed.
      const parsed = parseBoundedJson(line, MAX_STORED_JSON_DEPTH + 1)
      const record = parsed.ok ? parsed.value : undefined
      clean = false
      // The header and the shutdown marker say how the file was written; they are not records.
      if (isHeader.Check(record)) {
        buffered = record.flushIntervalMs > 0
        continue
      }
      if (isShutdown.Check(record)) {
        clean = true
        continue
      }
      report.lines++
      if (!parsed.ok || !apply(record, loading, golongpoll, report)) {
        report.malformed++
        const stream = streamOfBrokenLine(line)
        if (stream === undefined) damagedUnknown = true
        else damaged.add(stream)
      }
    }
  }
  report.unclean = buffered && !clean
  const streams: RestoredStream[] = []
  for (const [stream, state] of loading) {
    if (state.dropped) continue
    const messages = [...state.messages.values()].filter((m) => !state.removed.has(m.offset)).sort((a, b) => a.offset - b.offset)
    clampTimestamps(messages)
    if (report.unclean || damagedUnknown || damaged.has(stream)) {
      // Positions of this epoch may name messages the file lost: a new epoch, so none is given to another message.
      const epoch = newEpoch()
      for (let i = 0; i < messages.length; i++) messages[i] = { ...messages[i]!, epoch }
      streams.push({ stream, epoch, lastOffset: state.lastOffset, messages })
      report.renewed++
      continue
    }
    streams.push({ stream, epoch: state.epoch, lastOffset: state.lastOffset, messages })
  }
  for (const [category, events] of golongpoll) {
    if (loading.has(category)) {
      report.stale += events.length
      continue
    }
    // golongpoll panics on out-of-order timestamps; a stable sort keeps file order among equal ones.
    events.sort((a, b) => a.timestamp - b.timestamp)
    const epoch = newEpoch()
    const messages = events.map((event, index) => ({ ...event, epoch, offset: index + 1 }))
    streams.push({ stream: category, epoch, lastOffset: messages.length, messages })
  }
  report.streams = streams.length
  report.messages = streams.reduce((sum, s) => sum + s.messages.length, 0)
  return { streams, report }
}

/** Applies one parsed record; `false` when it is not a journal record. */
function apply(record: unknown, loading: Map<string, Loading>, golongpoll: Map<string, StreamMessage[]>, report: JournalLoadReport): boolean {
  if (isMessage.Check(record)) {
    const state = enter(loading, record.stream, record.epoch)
    if (state === undefined) {
      report.stale++
      return true
    }
    const message: StreamMessage = {
      stream: record.stream, offset: record.offset, epoch: record.epoch, timestamp: record.timestamp, data: record.data, json: encodeMessageData(record.data)
    }
    if (record.meta !== undefined) message.meta = record.meta as MessageMeta
    state.messages.set(record.offset, message)
    state.lastOffset = Math.max(state.lastOffset, record.offset)
    return true
  }
  if (isPosition.Check(record)) {
    const state = enter(loading, record.stream, record.epoch)
    if (state === undefined) report.stale++
    else state.lastOffset = Math.max(state.lastOffset, record.lastOffset)
    return true
  }
  if (isRemove.Check(record)) {
    const state = enter(loading, record.remove, record.epoch)
    if (state === undefined) report.stale++
    else for (const offset of record.offsets) state.removed.add(offset)
    return true
  }
  if (isDrop.Check(record)) {
    const state = loading.get(record.drop)
    if (state !== undefined && !state.dropped) {
      state.retired.add(state.epoch)
      state.dropped = true
    }
    return true
  }
  if (isGolongpoll.Check(record)) {
    report.golongpoll++
    let events = golongpoll.get(record.category)
    if (events === undefined) golongpoll.set(record.category, events = [])
    events.push({ stream: record.category, offset: 0, epoch: '', timestamp: record.timestamp, data: record.data, json: encodeMessageData(record.data) })
    return true
  }
  return false
}

/** The loading state of `stream` in `epoch`, switching to a new epoch when one starts; `undefined` for a retired epoch. */
function enter(loading: Map<string, Loading>, stream: string, epoch: string): Loading | undefined {
  const state = loading.get(stream)
  if (state === undefined) {
    const fresh: Loading = { epoch, lastOffset: 0, messages: new Map(), removed: new Set(), retired: new Set(), dropped: false }
    loading.set(stream, fresh)
    return fresh
  }
  if (state.retired.has(epoch)) return undefined
  if (state.epoch !== epoch || state.dropped) {
    // A newer history of the stream: the one before it is gone.
    state.retired.add(state.epoch)
    Object.assign(state, { epoch, lastOffset: 0, messages: new Map(), removed: new Set(), dropped: false })
  }
  return state
}

/** Timestamps never go backwards along offsets (a clock step or a hand-edited file), so reads by time stay correct. */
function clampTimestamps(messages: StreamMessage[]): void {
  for (let i = 1; i < messages.length; i++) {
    const previous = messages[i - 1]!.timestamp
    if (messages[i]!.timestamp < previous) messages[i] = { ...messages[i]!, timestamp: previous }
  }
}

/**
 * The stream a line that did not load belongs to, when its beginning survived:
 * every record rt writes starts with its stream name (`{"stream":…`,
 * `{"remove":…`, `{"drop":…`).
 */
function streamOfBrokenLine(line: string): string | undefined {
  const match = /^\{"(?:stream|remove|drop)":("(?:[^"\\]|\\.)*")/.exec(line)
  if (match === null) return undefined
  try {
    const stream = JSON.parse(match[1]!) as string
    return stream === '' ? undefined : stream
  } catch {
    return undefined
  }
}

/** A message record; the data is the text the broker encoded when it accepted the message, written as is. */
function messageLine(message: StreamMessage): string {
  const meta = message.meta === undefined ? '' : `,"meta":${JSON.stringify(message.meta)}`
  return `{"stream":${JSON.stringify(message.stream)},"offset":${message.offset},"epoch":${JSON.stringify(message.epoch)},` +
    `"timestamp":${message.timestamp},"data":${messageJson(message)}${meta}}\n`
}

function fail(message: string): never {
  throw new TypeError(`@rt/core: journal ${message}`)
}

/**
 * A journal attached to one {@link MemoryBroker}: `Journal.open(broker, options)`
 * loads the file into the broker, compacts it, then records every append,
 * removal and drop until {@link Journal.close}.
 */
export class Journal {
  /** What the file held when the journal opened. */
  readonly report: JournalLoadReport
  private readonly file: string
  private readonly broker: MemoryBroker
  private readonly flushIntervalMs: number
  private readonly fsync: boolean
  private readonly compactAfterBytes: number
  private readonly persisted: (stream: string) => boolean
  private readonly onError: (error: Error) => void
  private fd: number
  private pending: string[] = []
  private appendedBytes = 0
  private compactedBytes = 0
  private readonly detach: () => void
  private readonly timer: NodeJS.Timeout | undefined
  private closed = false

  /** Loads `options.file` into `broker` (replacing those streams' state), compacts it and starts recording. */
  static async open(broker: MemoryBroker, options: JournalOptions): Promise<Journal> {
    if (typeof options !== 'object' || options === null) fail('options must be an object')
    if (typeof options.file !== 'string' || options.file === '') fail('file must be a non-empty path')
    const flushIntervalMs = options.flushIntervalMs ?? 0
    if (!Number.isInteger(flushIntervalMs) || flushIntervalMs < 0) fail('flushIntervalMs must be a non-negative integer')
    const compactAfterBytes = options.compactAfterBytes ?? 1024 * 1024
    if (!Number.isInteger(compactAfterBytes) || compactAfterBytes < 1) fail('compactAfterBytes must be a positive integer')
    if (options.streams !== undefined && typeof options.streams !== 'function') fail('streams must be a function')
    if (options.onError !== undefined && typeof options.onError !== 'function') fail('onError must be a function')
    if (typeof broker?.observe !== 'function' || typeof broker.snapshot !== 'function') fail('needs a MemoryBroker')
    const { streams, report } = await readJournal(options.file)
    const persisted = options.streams ?? (() => true)
    broker.restore(streams.filter((s) => persisted(s.stream)))
    return new Journal(broker, { ...options, flushIntervalMs, compactAfterBytes }, report)
  }

  private constructor(broker: MemoryBroker, options: JournalOptions & { flushIntervalMs: number; compactAfterBytes: number }, report: JournalLoadReport) {
    this.report = report
    this.file = options.file
    this.broker = broker
    this.flushIntervalMs = options.flushIntervalMs
    this.fsync = options.fsync === true
    this.compactAfterBytes = options.compactAfterBytes
    this.persisted = options.streams ?? (() => true)
    this.onError = options.onError ?? ((error) => process.emitWarning(error.message, 'JournalWarning'))
    this.fd = this.rewrite()
    this.detach = broker.observe({
      onAppend: (message) => {
        if (this.persisted(message.stream)) this.record(messageLine(message))
      },
      onRemove: (stream, epoch, offsets) => {
        if (this.persisted(stream)) this.record(`${JSON.stringify({ remove: stream, epoch, offsets })}\n`)
      },
      onDrop: (stream) => {
        if (this.persisted(stream)) this.record(`${JSON.stringify({ drop: stream })}\n`)
      }
    })
    if (this.flushIntervalMs > 0) {
      this.timer = setInterval(() => this.flush(), this.flushIntervalMs)
      this.timer.unref()
    }
  }

  /** The journal file's path. */
  get path(): string {
    return this.file
  }

  /** Writes buffered records now (a no-op with `flushIntervalMs: 0`, where nothing is buffered). */
  flush(): void {
    if (this.pending.length === 0 || this.closed) return
    this.write(this.pending.join(''), true)
  }

  /** Writes `text` and drops what is buffered; compacts afterwards when allowed and due. */
  private write(text: string, compact: boolean): void {
    this.pending = []
    try {
      writeSync(this.fd, text)
      if (this.fsync) fsyncSync(this.fd)
      this.appendedBytes += Buffer.byteLength(text)
    } catch (error) {
      this.onError(error as Error)
      return
    }
    if (compact && this.appendedBytes > Math.max(this.compactAfterBytes, this.compactedBytes)) this.compact()
  }

  /** Rewrites the file from the broker's retained state (see the module comment). */
  compact(): void {
    if (this.closed) return
    this.flush()
    try {
      const fd = this.rewrite()
      closeSync(this.fd)
      this.fd = fd
    } catch (error) {
      this.onError(error as Error)
    }
  }

  /** Flushes what is buffered, stops recording and closes the file. The broker keeps its state. */
  async close(): Promise<void> {
    if (this.closed) return
    // The marker that proves to the next start that nothing buffered was lost.
    this.pending.push(SHUTDOWN_LINE)
    this.write(this.pending.join(''), false)
    this.closed = true
    this.detach()
    clearInterval(this.timer)
    closeSync(this.fd)
  }

  private record(line: string): void {
    this.pending.push(line)
    if (this.flushIntervalMs === 0) this.flush()
  }

  /** Writes the broker's state to `<file>.compact`, renames it over the journal and returns an append descriptor. */
  private rewrite(): number {
    const temporary = `${this.file}.compact`
    const fd = openSync(temporary, 'w', 0o644)
    try {
      writeSync(fd, `${JSON.stringify({ journal: 1, flushIntervalMs: this.flushIntervalMs })}\n`)
      for (const stream of this.broker.snapshot()) {
        if (!this.persisted(stream.stream)) continue
        let text = `${JSON.stringify({ stream: stream.stream, epoch: stream.epoch, lastOffset: stream.lastOffset })}\n`
        for (const message of stream.messages) text += messageLine(message)
        writeSync(fd, text)
      }
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temporary, this.file)
    this.compactedBytes = statSync(this.file).size
    this.appendedBytes = 0
    return openSync(this.file, 'a')
  }
}

/**
 * Whether `broker` can carry a {@link Journal}: core's `MemoryBroker`, from this
 * or any other copy of `@rt/core` (a duck-typed check, where `instanceof` would
 * refuse another copy's broker).
 */
export function isJournalable(broker: Broker): broker is MemoryBroker {
  const candidate = broker as Partial<Record<'observe' | 'snapshot' | 'restore', unknown>>
  return typeof candidate.observe === 'function' && typeof candidate.snapshot === 'function' && typeof candidate.restore === 'function'
}
