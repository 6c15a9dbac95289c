import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { readManifest, requireRtCore } from '@rt/core'
import { sessionRoutes } from './handler.js'
import { resolveOptions, type SessionsOptions as Options } from './options.js'
import { SessionRegistry } from './registry.js'

/** Options of {@link rtSessions} (the README lists each with its default). */
export type RtSessionsOptions = Options
/** @deprecated Renamed {@link RtSessionsOptions} (one naming scheme across rt); this alias goes before 1.0. */
export type SessionsOptions = Options
export type { CableEvent, JoinedMessage, PollAnswer, SessionRequest, SessionResponse } from './messages.js'
export { SessionRegistry, identityKey } from './registry.js'
export { toIdentifierString, toIdentifierObject, type IdentifierObject } from './identifier.js'
export { encodeEvent, type SseEvent } from './encoder.js'
export { SESSION_ID_PATTERN } from './requests.js'
export { RETRY_NO_RECONNECT } from './client-session.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The sessions `@rt/sessions` holds on this process (size, pending timers). */
    rtSessions: SessionRegistry
  }
}

/** This package's name and supported `@rt/core` range, for the one-copy check at register. */
const manifest = readManifest(new URL('../package.json', import.meta.url))

async function sessionsPlugin(fastify: FastifyInstance, options: RtSessionsOptions): Promise<void> {
  requireRtCore(fastify, manifest)
  const resolved = resolveOptions(options)
  if (fastify.hasDecorator('rtSessions')) throw new TypeError('@rt/sessions: already registered on this instance')
  const registry = new SessionRegistry(fastify.rt.hub, resolved, fastify.rt.metrics)
  fastify.decorate('rtSessions', registry)
  // Long-lived responses end before the server waits for its connections to close.
  fastify.addHook('preClose', () => registry.close())
  await fastify.register(async (instance) => sessionRoutes(instance, resolved, registry), { prefix: resolved.prefix })
}

/**
 * The actioncable-to-eventsource HTTP API on rt's hub: `GET {prefix}/{id}`
 * (EventSource, or JSON long polling with `Accept: application/json`) and
 * `POST {prefix}/{id}` (subscribe, unsubscribe, send). Register `@rt/core` first.
 */
export const rtSessions = fp(sessionsPlugin, { fastify: '5.x', name: '@rt/sessions', dependencies: ['@rt/core'] })
export default rtSessions
