import type { Payload } from '../tracker.js'

/** A message as published: the bench payload plus filler, about the size of a small chat message. */
export interface BenchMessage extends Payload {
  b: string
}

export const FILLER = 'x'.repeat(64)

export interface TargetOptions {
  /** Stream names are `${streamPrefix}${index}`. */
  streamPrefix: string
  /** Streams (categories) the scenario uses; some servers set them up front. */
  streams: number
  /** rt's retained history per stream (the peers keep every message). */
  historyLimit: number
  /** Longest hold of one poll, seconds. */
  holdSeconds: number
  /** Port to listen on (standalone servers, `external.ts`); 0 or absent: a free one. */
  port?: number
}

/** One server under test, living in its own process. */
export interface ServerTarget {
  port: number
  /** Publishes one message to a stream in the way a user of this library would. */
  publish(stream: number, message: BenchMessage): unknown
  /** In-process publish throughput: `count` publishes (or `maxMs`), one after the other. */
  inproc?(count: number, maxMs: number): Promise<{ sent: number; ms: number }>
  close(): Promise<void>
  /** A server in another process (`external.ts`): its CPU time (ms) and RSS, read instead of this process's. */
  cpuMs?(): number
  rss?(): number
  /** Where that process's profile wants the measured window written (when profiled). */
  profileMark?: string | undefined
}

export type TargetFactory = (options: TargetOptions) => Promise<ServerTarget>
