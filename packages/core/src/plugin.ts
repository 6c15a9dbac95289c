import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Broker, PublishOptions, StreamMessage } from './broker.js'
import { broadcastEndpoint } from './broadcast.js'
import { Hub } from './hub/hub.js'
import { brandRtCore } from './identity.js'
import { MemoryBroker } from './memory-broker.js'
import { MemorySessionStore } from './session-store.js'
import { Metrics } from './metrics.js'
import type { RtCoreOptions } from './options.js'
import { deriveBroadcastKey } from './signing.js'
import { resolveLimits, type Limits } from './limits.js'
import { closeHttp2SessionsOnClose } from './http2-sessions.js'

/** What `fastify.rt` holds: the one shared broker and what every transport plugs into. */
export interface RtCore {
  readonly broker: Broker
  readonly metrics: Metrics
  /** The Action Cable session model that `@rt/sse` and `@rt/long-poll` drive. */
  readonly hub: Hub
  /** The bounds every rt entry point parses with (the `limits` option over `DEFAULT_LIMITS`). */
  readonly limits: Readonly<Limits>
  /** Publishes `data` to `stream` (same as `broker.publish`). */
  publish(stream: string, data: unknown, options?: PublishOptions): Promise<StreamMessage>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** rt's broker, hub and metrics, shared by every rt transport. */
    rt: RtCore
  }
}

function fail(message: string): never {
  throw new TypeError(`@rt/core: ${message}`)
}

function optionalString(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') fail(`${name} must be a non-empty string`)
  return value
}

function optionalBoolean(value: unknown, name: string): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') fail(`${name} must be a boolean`)
  return value
}

function validPath(value: unknown, name: string, fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !value.startsWith('/')) fail(`${name} must be a path starting with "/"`)
  return value
}

async function rtCorePlugin(fastify: FastifyInstance, options: RtCoreOptions): Promise<void> {
  if (fastify.hasDecorator('rt')) fail('already registered on this instance')
  const secret = optionalString(options.secret, 'secret')
  const explicitKey = optionalString(options.broadcastKey, 'broadcastKey')
  if (options.broker !== undefined && typeof options.broker.publish !== 'function') fail('broker must implement the Broker interface')
  const broadcast = options.broadcast ?? {}
  if (broadcast !== false && typeof broadcast !== 'object') fail('broadcast must be false or an object')
  if (broadcast !== false && broadcast.authorize !== undefined && typeof broadcast.authorize !== 'function') {
    fail('broadcast.authorize must be a function')
  }
  const bodyLimit = broadcast === false ? 0 : broadcast.bodyLimit ?? 1024 * 1024
  if (!Number.isInteger(bodyLimit) || bodyLimit < 0) fail('broadcast.bodyLimit must be a positive integer')
  const metricsOption = options.metrics ?? false
  const metricsPath = metricsOption === false ? undefined
    : validPath(metricsOption === true ? undefined : metricsOption.path, 'metrics.path', '/metrics')

  if (options.authenticate !== undefined && typeof options.authenticate !== 'function') fail('authenticate must be a function')
  if (options.channels !== undefined) {
    if (typeof options.channels !== 'object' || options.channels === null) fail('channels must be an object of channels')
    for (const [name, channel] of Object.entries(options.channels)) {
      if (typeof channel !== 'object' || channel === null) fail(`channel ${name} must be an object`)
      if (name === '$pubsub') fail('$pubsub is a reserved channel name')
    }
  }
  const limits = resolveLimits(options.limits)
  const sessionsTtl = options.sessionsTtl ?? 300
  if (typeof sessionsTtl !== 'number' || !(sessionsTtl >= 0)) fail('sessionsTtl must be a non-negative number of seconds')
  const presenceTtl = options.presenceTtl ?? 15
  if (typeof presenceTtl !== 'number' || !(presenceTtl > 0) || !Number.isFinite(presenceTtl)) fail('presenceTtl must be a positive number of seconds')
  const transientBacklog = options.transientBacklog ?? 100
  if (!Number.isInteger(transientBacklog) || transientBacklog < 1) fail('transientBacklog must be a positive integer')
  const streamsWhisper = optionalBoolean(options.streamsWhisper, 'streamsWhisper')
  const streamsPresence = optionalBoolean(options.streamsPresence, 'streamsPresence')
  const jwtSecret = optionalString(options.jwtSecret, 'jwtSecret') ?? secret
  const jwtParam = optionalString(options.jwtParam, 'jwtParam') ?? 'jid'
  if (!/^[A-Za-z0-9_-]+$/.test(jwtParam)) fail('jwtParam must hold only letters, digits, "_" and "-" (it also names the X-<param> header)')
  const jwtForce = optionalBoolean(options.jwtForce, 'jwtForce')
  if (jwtForce && jwtSecret === undefined) fail('jwtForce needs jwtSecret (or secret)')
  const streamsSecret = optionalString(options.streamsSecret, 'streamsSecret') ?? secret
  const turboStreamsSecret = optionalString(options.turboStreamsSecret, 'turboStreamsSecret')

  const ownsBroker = options.broker === undefined
  const broker = options.broker ?? new MemoryBroker(options.history)
  const metrics = new Metrics()
  const ownsStore = options.sessionStore === undefined
  const store = options.sessionStore ?? new MemorySessionStore()
  const hub = new Hub({
    broker,
    store,
    channels: options.channels,
    authenticate: options.authenticate,
    publicStreams: options.publicStreams === true,
    streamsSecret,
    turboStreamsSecret,
    sessionsTtl,
    streamsWhisper,
    streamsPresence,
    presenceTtl,
    transientBacklog,
    ...(jwtSecret === undefined ? {} : { jwt: { secret: jwtSecret, param: jwtParam, force: jwtForce } }),
    logger: fastify.log,
    limits
  })
  const rt: RtCore = {
    broker,
    metrics,
    hub,
    limits,
    publish: (stream, data, publishOptions) => broker.publish(stream, data, publishOptions)
  }
  brandRtCore(rt)
  fastify.decorate('rt', rt)

  if (broadcast !== false) {
    const path = validPath(broadcast.path, 'broadcast.path', '/_broadcast')
    const key = explicitKey ?? (secret === undefined ? undefined : deriveBroadcastKey(secret))
    await fastify.register(async (instance) => {
      await broadcastEndpoint(instance, broker, { path, key, authorize: broadcast.authorize, bodyLimit, limits, disconnect: (identifier, reconnect) => hub.disconnectRemote(identifier, reconnect) })
    })
  }
  if (metricsPath !== undefined) {
    fastify.get(metricsPath, async (_request, reply) => {
      return reply.type(metrics.registry.contentType).send(await metrics.text())
    })
  }
  closeHttp2SessionsOnClose(fastify)
  fastify.addHook('onClose', async () => {
    hub.close()
    if (ownsStore) await store.close()
    if (ownsBroker) await broker.close()
  })
}

/**
 * The `@rt/core` Fastify plugin: decorates the app with `fastify.rt` (one shared
 * broker, metrics), serves the broadcast endpoint and, optionally, `/metrics`.
 * Register it before any rt transport.
 */
export const rtCore = fp(rtCorePlugin, { fastify: '5.x', name: '@rt/core' })
export default rtCore
