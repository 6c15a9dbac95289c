import type { FastifyRequest } from 'fastify'
import type { StreamMessage, StreamPosition } from '../broker.js'
import { verifySignedStream } from '../signing.js'
import { isInternalStream } from './protocol.js'

/** What `authenticate` returned for this connection. */
export type Identity = Record<string, unknown>

/** What a stream of a subscription also allows, besides receiving its broadcasts. */
export interface StreamFromOptions {
  /** Clients may `whisper` to this stream (to every other subscriber). Default false. */
  whisper?: boolean
  /** Clients may join, leave and read this stream's presence set. Default false. */
  presence?: boolean
  /**
   * For a stream the session does not read yet: deliver what was published
   * after this position (read before `subscribed` asked for it elsewhere, as
   * `@rt/action-cable` does before subscribing upstream) rather than from now,
   * so nothing published while `subscribed` ran is missed.
   */
  from?: StreamPosition
}

/** A channel's handle on its subscription's presence set (the stream given `presence: true`). */
export interface ChannelPresence {
  /** Joins the set as `id` (after the subscription is confirmed, when called in `subscribed`). */
  join(id: string, info?: unknown): void
  /** Leaves the set. */
  leave(): void
}

/** What a channel handler can see and do. */
export interface ChannelContext {
  /** The connection's identity (from `authenticate`, or the identifiers of its JWT). */
  readonly identity: Identity
  /** The identifier's fields other than `channel`. */
  readonly params: Record<string, unknown>
  /** The identifier exactly as the client sent it. */
  readonly identifier: string
  /** The session id. */
  readonly sid: string
  /** What the hub's channel source stored with the session (see `ChannelSource.open`). */
  readonly sourceState?: Record<string, unknown> | undefined
  /** Starts delivering a stream's broadcasts to this subscription; `options` opt it into whispers and presence. */
  streamFrom(stream: string, options?: StreamFromOptions): void
  /** Stops delivering a stream's broadcasts to this subscription. */
  stopStream(stream: string): void
  /** Rejects the subscription (in `subscribed`): the client gets `reject_subscription`. */
  reject(): void
  /** Sends `data` to this subscription only. */
  transmit(data: unknown): void
  /** Publishes `data` to a stream, for every subscriber on every node. */
  broadcast(stream: string, data: unknown): Promise<StreamMessage>
  /** The presence set of the stream opened with `presence: true` (joins fail without one). */
  readonly presence: ChannelPresence
}

/**
 * A channel: Action Cable's server-side class, as plain functions. Handlers may
 * be async; an exception rejects the subscription (in `subscribed`) or is
 * reported as a command error (in actions), never crashing the process.
 *
 * Handlers must keep no per-subscription state of their own: a subscription
 * may continue on another request or process (long polling, clusters), where
 * only `params`, `identity` and its streams come along.
 */
export interface Channel {
  subscribed?(ctx: ChannelContext): unknown
  unsubscribed?(ctx: ChannelContext): unknown
  /** `perform(action, data)` from the client calls `actions[action](ctx, data)`. */
  actions?: Record<string, (ctx: ChannelContext, data: Record<string, unknown>) => unknown>
  /** Any action not in `actions` (a channel source forwarding every action, e.g. upstream). */
  perform?(ctx: ChannelContext, action: string, data: Record<string, unknown>): unknown
}

export type Channels = Record<string, Channel>

/** Decides who connects: an identity, or `false`/`null`/`undefined` to answer 401. */
export type Authenticate = (request: FastifyRequest) => Identity | false | null | undefined | Promise<Identity | false | null | undefined>

/** The reserved channel of AnyCable's public and signed streams. */
export const PUBSUB_CHANNEL = '$pubsub'
/** Turbo Rails' channel: signed stream names. */
export const TURBO_CHANNEL = 'Turbo::StreamsChannel'

export interface StreamChannelOptions {
  publicStreams: boolean
  streamsSecret: string | undefined
  turboStreamsSecret: string | undefined
  /** Whispers on signed streams (public streams always allow them), AnyCable's `--streams_whisper`. */
  streamsWhisper: boolean
  /** Presence on signed streams (public streams always allow it), AnyCable's `--streams_presence`. */
  streamsPresence: boolean
}

/** `$pubsub`: `stream_name` (public streams) or `signed_stream_name` (signed with the streams secret). */
export function pubsubChannel(options: StreamChannelOptions): Channel {
  return {
    subscribed(ctx) {
      const { stream_name: name, signed_stream_name: signed } = ctx.params
      if (typeof signed === 'string') {
        const verified = options.streamsSecret === undefined ? undefined : verifySignedStream(signed, options.streamsSecret)
        if (verified === undefined) return ctx.reject()
        return ctx.streamFrom(verified, { whisper: options.streamsWhisper, presence: options.streamsPresence })
      }
      if (options.publicStreams && typeof name === 'string' && name !== '' && !isInternalStream(name)) {
        return ctx.streamFrom(name, { whisper: true, presence: true })
      }
      ctx.reject()
    }
  }
}

/** `Turbo::StreamsChannel`: signed stream names only. */
export function turboChannel(options: StreamChannelOptions): Channel {
  return {
    subscribed(ctx) {
      const signed = ctx.params.signed_stream_name
      const secret = options.turboStreamsSecret ?? options.streamsSecret
      const verified = typeof signed === 'string' && secret !== undefined ? verifySignedStream(signed, secret) : undefined
      if (verified === undefined) return ctx.reject()
      ctx.streamFrom(verified)
    }
  }
}
