import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { readManifest, requireRtCore } from '@rt/core'
import { ActionCableBridge } from './bridge.js'
import { resolveOptions, type RtActionCableOptions } from './options.js'

export type { RtActionCableOptions } from './options.js'
export { RtActionCableOptionsSchema } from './options.js'
export { ActionCableBridge, upstreamStream, type UpstreamState } from './bridge.js'
export { upstreamCounters } from './upstream.js'

/** This package's name and supported `@rt/core` range, for the one-copy check at register. */
const manifest = readManifest(new URL('../package.json', import.meta.url))

declare module 'fastify' {
  interface FastifyInstance {
    /** The Action Cable bridge of `@rt/action-cable`. */
    rtActionCable: ActionCableBridge
  }
}

async function rtActionCablePlugin(fastify: FastifyInstance, given: RtActionCableOptions): Promise<void> {
  requireRtCore(fastify, manifest)
  const options = resolveOptions(given)
  const sockets = fastify.rt.metrics.gauge('action_cable_upstream_sockets', 'Upstream Action Cable sockets held by this process')
  const bridge = new ActionCableBridge(fastify.rt.hub, options, fastify.log, (count) => sockets.set(count))
  fastify.rt.hub.useChannelSource(bridge)
  fastify.decorate('rtActionCable', bridge)
  // Before the transports close their sessions: no socket is re-opened for a session on its way out.
  fastify.addHook('preClose', () => bridge.close())
}

/**
 * `@rt/action-cable`: makes a real Action Cable server (a Rails app) the source
 * of every channel that is not a JS channel, for every rt transport (register
 * `@rt/core` first). One upstream WebSocket per rt session, opened with the
 * client's allow-listed headers.
 */
export const rtActionCable = fp(rtActionCablePlugin, { fastify: '5.x', name: '@rt/action-cable', dependencies: ['@rt/core'] })
export default rtActionCable
