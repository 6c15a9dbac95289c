import type { FastifyRequest } from 'fastify'
import type { Channel } from './channels.js'
import type { Session } from './session.js'

/**
 * A provider of channels that are not JS channels registered with `@rt/core`,
 * such as `@rt/action-cable`'s upstream Action Cable server. Registered JS
 * channels win by name; the source answers every other channel name.
 *
 * The hooks let the source keep per-session resources (an upstream socket)
 * for as long as the rt session lives, on whichever process holds it.
 */
export interface ChannelSource {
  /** The channel for a name that no JS channel has, or `undefined` (the subscription is rejected). */
  channel(name: string): Channel | undefined
  /**
   * A new session is being opened for `request` (after core's `authenticate`):
   * the source state to store with the session (JSON-serialisable, copied on
   * restore), or `undefined` to refuse the connection (401).
   */
  open?(request: FastifyRequest, sid: string): Promise<Record<string, unknown> | undefined>
  /** A session was attached to a transport (connect, restore, each pull request). */
  attached?(session: Session): Promise<void>
  /** A session closed (its `unsubscribed` callbacks ran). */
  closed?(session: Session): Promise<void>
}
