/** Messages between the orchestrator, the server process and the load processes (over the fork IPC channel). */
import type { Accounting } from './tracker.js'

/** How a load process talks to the server under test. */
export type ClientKind =
  | 'sse'
  | 'ceiling-lp'
  | 'rt-lp'
  | 'socketio'
  | 'category'
  | 'category-helper'
  | 'express-longpoll'

export interface LoadJob {
  kind: ClientKind
  port: number
  /** Stream index of each client this process runs. */
  streams: number[]
  /** For `sse`: request path with `{stream}` standing for the stream name. For `category`: the route path. */
  path?: string
  /** For `sse`: ready once a data field contains this (see SseClient). */
  readyMarker?: string
  /** Stream names are `${streamPrefix}${index}`. */
  streamPrefix: string
  /** Longest hold of one poll, seconds. */
  holdSeconds: number
  /** Clients connecting at the same time. */
  connectConcurrency: number
  connectTimeoutMs: number
  maxReconnects: number
  /** Source address of this process's connections (an address of 127.0.0.0/8: each has its own ephemeral ports). */
  localAddress?: string
}

export type ToLoad =
  | { type: 'start'; job: LoadJob }
  | { type: 'drop'; at: number }
  | { type: 'finish'; published: number[]; deadline: number }
  | { type: 'stop' }

export interface LoadResult extends Accounting {
  failedToConnect: number
  reconnects: number
  errors: number
  /** Poll requests answered after the clients were ready. */
  polls: number
  latency: Array<[number, number]>
  latencyMax: number
  firstReceive: number
  lastReceive: number
  /** Reconnect storm: clients caught up (contiguous up to a message published after the drop) and the last of them. */
  caughtUp: number
  lastCaughtUpAt: number
  /** CPU the load process used while the job ran, ms. */
  cpuMs: number
}

export type FromLoad =
  | { type: 'ready'; connected: number; failed: number; ms: number }
  | { type: 'result'; result: LoadResult }
  | { type: 'stopped' }
  | { type: 'error'; message: string }

export interface PublishPlan {
  /** Messages per second over all streams. */
  rate: number
  durationMs: number
  /** Messages go round-robin over streams 0..streams-1. */
  streams: number
}

export interface PublishReport {
  counts: number[]
  sent: number
  start: number
  end: number
}

export interface ServerStats {
  rss: number
  cpuMs: number
  at: number
  /** Highest RSS sampled since the last `stats` request. */
  peakRss: number
}

export type ToServer =
  /** `gc`: a full garbage collection first, so that RSS counts what is held, not what is not yet collected. */
  | { type: 'stats'; gc?: boolean }
  | { type: 'publish'; plan: PublishPlan }
  | { type: 'inproc'; count: number; maxMs: number }
  /** Start (or end) of the measured window: a profiled server's summary counts only samples inside it. */
  | { type: 'mark'; end?: boolean }
  | { type: 'close' }

export type FromServer =
  | { type: 'ready'; port: number }
  | { type: 'stats'; stats: ServerStats }
  | { type: 'published'; report: PublishReport }
  | { type: 'inproc'; sent: number; ms: number }
  | { type: 'error'; message: string }
