import type { ServerResponse } from 'node:http'

/** Response headers of an event stream (anycable-go's set, minus its version header). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'private, no-cache, no-store, no-transform, must-revalidate, max-age=0',
  pragma: 'no-cache',
  'x-accel-buffering': 'no',
  'x-content-type-options': 'nosniff'
}

/**
 * The write side of one EventSource listener. A listener that stops reading
 * while more than `maxBuffered` bytes wait for it is cut off rather than held
 * in memory without bound (its browser reconnects and joins again).
 */
export class SseConnection {
  private ended = false

  constructor(
    private readonly response: ServerResponse,
    private readonly maxBuffered: number
  ) {}

  get isEnded(): boolean {
    return this.ended || this.response.destroyed
  }

  /** Writes a frame; `false` when the listener is gone or was cut off for not reading. */
  write(frame: string): boolean {
    if (this.isEnded) return false
    this.response.write(frame)
    if (this.response.writableLength <= this.maxBuffered) return true
    this.response.destroy()
    return false
  }

  /** Ends the stream, after a last frame if given. */
  end(frame?: string): void {
    if (this.isEnded) return
    this.ended = true
    this.response.end(frame)
  }
}
