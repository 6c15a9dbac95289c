import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import { disconnectMessage, pingMessage, pingWheel, type Outgoing, type Pingable, type PingPrecision, type PingWheel, type ServerMessage, type StreamPosition } from '@rt/core'
import { formatCursor } from './cursor.js'
import { COMMENT_PING, encodeGetFrame, encodeGetHead, encodePostFrame, eventTail, hasPosition, messageType, serialize } from './encoder.js'

/**
 * The response headers of an event stream, as AnyCable's server sends them,
 * plus `no-transform` so that proxies do not recompress (and buffer) it.
 */
export const STREAM_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'private, no-cache, no-store, must-revalidate, max-age=0, no-transform',
  pragma: 'no-cache',
  expires: '0',
  'x-content-type-options': 'nosniff',
  'x-accel-buffering': 'no'
}

/** How long a connection that was ended (slow, shutdown) may take to drain before its socket is destroyed. */
export const DRAIN_GRACE_MS = 5000

/** Connections written to in this turn of the event loop: one check for all of them. */
const written = new Set<SseConnection>()
let checking = false

function checkBuffers(): void {
  checking = false
  for (const connection of written) connection.checkBuffer()
  written.clear()
}

/** Where a GET connection finds its streams and where each began, for the multi-stream cursor. */
export interface CursorSource {
  /** The streams the connection's subscriptions receive now. */
  streams(): string[]
  /** The position a stream's delivery on this connection started from (before its first message). */
  start(stream: string): StreamPosition | undefined
}

/**
 * How a connection writes. Equal for every connection opened with the same
 * request options, so connections share one object (see `handler.ts`).
 */
export interface ConnectionSettings {
  /** `get`: EventSource frames (unwrapped data, cursor ids); `post`: full Action Cable messages. */
  readonly format: 'get' | 'post'
  /** GET `raw` mode: data messages only, comment pings. */
  readonly raw: boolean
  readonly pingInterval: number
  /** Ping timestamps in seconds (default), milliseconds or nanoseconds: AnyCable's `?ptp=`. */
  readonly pingPrecision?: PingPrecision
  readonly maxBufferedBytes: number
}

/**
 * The connection's own counterpart: its streams, for the multi-stream cursor
 * (GET), and who is told when it ends. One object (the session's sink) rather
 * than a closure per callback.
 */
export interface ConnectionOwner extends CursorSource {
  /** Called once when the connection ends, whoever ended it. */
  ended(connection: SseConnection): void
}

/**
 * The write side of one event stream: frames out, backpressure, pings, close.
 * Writes never wait: a connection whose unsent bytes pass `maxBufferedBytes` is
 * cut off (`disconnect` reason `slow`, reconnect true) instead of slowing the
 * fan-out down or growing without bound.
 */
export class SseConnection implements Pingable {
  /** Positions of the stream messages written (multi-stream GET only: made on first use, as most connections never need it). */
  private written: Map<string, StreamPosition> | undefined
  /** The ping wheel the connection is on. */
  private pings: PingWheel | undefined
  private drainTimer: NodeJS.Timeout | undefined
  private ended = false
  /** GET with more than one stream (fixed once open: a GET takes no commands), decided on the first message. */
  private multiStream: boolean | undefined

  constructor(
    private readonly res: ServerResponse,
    private readonly options: ConnectionSettings,
    private readonly owner: ConnectionOwner
  ) {
    // `on`, not `once`: 'close' comes once, and `once` wraps each listener in three more objects (~150 B a connection).
    res.on('close', () => this.gone())
    // HTTP/2: a stream the client reset, then written to before Node noticed, errors with no 'close' on the
    // response; its 'aborted' always comes. Destroying it frees the stream.
    const stream = (res as unknown as Partial<Pick<Http2ServerResponse, 'stream'>>).stream
    stream?.once('aborted', () => {
      this.gone()
      res.destroy()
    })
  }

  /** Whether the connection has ended (by either side). */
  get isEnded(): boolean {
    return this.ended
  }

  /** Sends the status and headers at once, so that clients and proxies see the stream open. */
  open(headers: Record<string, number | string | string[] | undefined>, httpVersionMajor: number): void {
    this.res.socket?.setNoDelay(true)
    this.res.writeHead(200, {
      ...(headers as OutgoingHttpHeaders),
      ...STREAM_HEADERS,
      // Connection-specific headers are forbidden on HTTP/2.
      ...(httpVersionMajor === 1 ? { connection: 'keep-alive' } : {})
    })
    this.res.flushHeaders()
  }

  /**
   * Starts the pings: the first at a random time in [0.5, 1.5) × the interval,
   * then every interval, driven by the process's one ping wheel for that
   * interval (no timer of its own).
   */
  startPings(): void {
    if (this.ended || this.pings !== undefined) return
    this.pings = pingWheel(this.options.pingInterval)
    this.pings.add(this)
  }

  /** Writes one session message in this connection's format. */
  send(outgoing: Outgoing): void {
    if (this.ended) return
    const { message } = outgoing
    const type = messageType(message)
    if (type === 'disconnect') return this.end(message)
    // Raw mode: data messages only, as AnyCable.
    if (this.options.raw && type !== undefined) return
    if (this.options.format === 'post') return this.write(outgoing.encode(encodePostFrame))
    // One stream (nearly every EventSource): AnyCable's own id in the shared frame says it all, nothing to track.
    // Decided before anything per message: this runs for every connection of a broadcast.
    if ((this.multiStream ??= this.owner.streams().length > 1) && hasPosition(message)) {
      this.track(message)
      this.write(outgoing.encode(encodeGetHead))
      this.write(Buffer.from(eventTail(formatCursor(this.positions(this.owner.streams())))))
    } else {
      this.write(outgoing.encode(encodeGetFrame))
    }
  }

  /**
   * Ends the stream, first sending `message` (a `disconnect`) unless in raw
   * mode, where AnyCable drops every typed message. A client that does not
   * drain what is left within {@link DRAIN_GRACE_MS} is cut.
   */
  end(message: ServerMessage = disconnectMessage('server_restart', true)): void {
    if (this.ended) return
    if (!this.options.raw) this.res.write(this.options.format === 'post' ? encodePostFrame(message) : encodeGetFrame(message))
    this.res.end()
    this.drainTimer = setTimeout(() => this.res.destroy(), DRAIN_GRACE_MS).unref()
    this.finish()
  }

  /** Writes a ping (called by the ping wheel). */
  ping(): void {
    this.write(this.options.raw ? COMMENT_PING : pingFrame(Date.now(), this.options.pingPrecision))
  }

  private write(chunk: Buffer): void {
    this.res.write(chunk)
    // What is unsent only shrinks until the next write, so a connection under the bound now is under it at
    // the end of this turn too: only one over it now needs the deferred check (not all 10k of a broadcast).
    if (this.res.writableLength <= this.options.maxBufferedBytes) return
    written.add(this)
    if (!checking) {
      checking = true
      setImmediate(checkBuffers)
    }
  }

  /**
   * Cuts the connection off when what it was given is still not sent. Checked
   * once the writes of this turn of the event loop were handed to the socket
   * (Node corks a chunked response until the next tick), so that a burst that a
   * reading client takes at once does not count against it.
   */
  checkBuffer(): void {
    // writableLength counts the response's and its socket's unsent bytes.
    if (!this.ended && this.res.writableLength > this.options.maxBufferedBytes) this.end(disconnectMessage('slow', true))
  }

  /** Records a stream message's position (multi-stream connections: for their cursor id). */
  private track(message: ServerMessage): void {
    const { stream_id: stream, epoch, offset } = message as { stream_id: string; epoch: string; offset: number }
    this.written ??= new Map()
    const known = this.written.get(stream)
    // History replayed after live messages (a later `history` command) never moves the cursor back.
    // Updated in place: this runs per connection per message.
    if (known === undefined) this.written.set(stream, { offset, epoch })
    else if (known.epoch !== epoch || offset > known.offset) {
      known.offset = offset
      known.epoch = epoch
    }
  }

  private positions(streams: readonly string[]): Map<string, StreamPosition> {
    const positions = new Map<string, StreamPosition>()
    for (const stream of streams) {
      const position = this.written?.get(stream) ?? this.owner.start(stream)
      if (position !== undefined) positions.set(stream, position)
    }
    return positions
  }

  /** The response closed (the client went away, or the end was written). */
  private gone(): void {
    clearTimeout(this.drainTimer)
    this.finish()
  }

  private finish(): void {
    if (this.ended) return
    this.ended = true
    this.pings?.remove(this)
    this.owner.ended(this)
  }
}

let lastPing: { second: number; frame: Buffer } | undefined

/** The ping frame of the current second, encoded once for every connection that pings in it (finer precisions each time). */
export function pingFrame(now = Date.now(), precision: PingPrecision = 's'): Buffer {
  if (precision !== 's') return Buffer.from(serialize({ event: 'ping', data: JSON.stringify(pingMessage(now, precision)) }))
  const message = pingMessage(now)
  if (lastPing?.second !== message.message) {
    lastPing = { second: message.message, frame: Buffer.from(serialize({ event: 'ping', data: JSON.stringify(message) })) }
  }
  return lastPing.frame
}
