import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { AddressInfo, Socket } from 'node:net'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import { Journal, MemoryBroker, deriveBroadcastKey, rtCore, type Broker, type RtCoreOptions, type SessionStore } from '@rt/core'
import { rtSse } from '@rt/sse'
import { rtLongPoll } from '@rt/long-poll'
import { rtCategoryPoll } from '@rt/category-poll'
import { rtSessions } from '@rt/sessions'
import { rtActionCable } from '@rt/action-cable'
import { RedisBroker, RedisSessionStore } from '@rt/redis'
import { ConfigError, resolveConfig } from './config.js'
import type { ServerConfig } from './schema.js'

/** Options of {@link startServer}: any flag, by its name (`{ sse: true, port: 0, broadcast_key: 'k' }`); the rest take their defaults. */
export type StartServerOptions = Partial<ServerConfig>

/** One endpoint the server serves, as logged at start-up. */
export interface Endpoint {
  method: string
  /** Path on the server (`{id}` marks a parameter). */
  path: string
  /** What is served there, in anycable-go's start-up wording. */
  what: string
  /** Settings worth seeing at start-up, logged after the URL. */
  details?: string
}

/** What {@link RtServer.stop} did. */
export interface StopResult {
  /** True when connections were still open at the timeout and were cut. */
  forced: boolean
}

/** A running server: what `startServer()` returns. */
export interface RtServer {
  /** The validated configuration, defaults applied. */
  readonly config: ServerConfig
  /** The Fastify app: add routes or hooks before traffic arrives if you need them. */
  readonly app: FastifyInstance
  /** Base URL, e.g. `http://localhost:8080`. */
  readonly url: string
  /** The port listened on (useful with `port: 0`). */
  readonly port: number
  readonly endpoints: readonly Endpoint[]
  /**
   * Stops gracefully: new connections are refused, held polls are answered,
   * SSE streams get `disconnect` (`server_restart`, `reconnect: true`), the
   * journal is flushed and closed, brokers are closed. Connections still open
   * after `timeoutMs` (default `--shutdown_timeout`) are cut. Calling it again
   * returns the same promise.
   */
  stop(options?: { timeoutMs?: number }): Promise<StopResult>
}

/**
 * Maps `--jwt_secret`, `--jwt_param` and `--enforce_jwt` to @rt/core's JWT
 * options. With a core that has no JWT support they are refused at start-up
 * rather than ignored (a server that ignores `--enforce_jwt` lets everyone in).
 */
export function jwtOptions(config: ServerConfig): Pick<RtCoreOptions, 'jwtSecret' | 'jwtParam' | 'jwtForce'> {
  const secret = config.jwt_secret || config.secret
  if (secret === '') {
    if (config.enforce_jwt) throw new ConfigError('--enforce_jwt needs --jwt_secret or --secret to verify tokens')
    return {}
  }
  return { jwtSecret: secret, jwtParam: config.jwt_param, jwtForce: config.enforce_jwt }
}

/** `--action_cable_*`: the bridge's options (the upstream's own origin unless `--action_cable_origin`). */
export function actionCableOptions(config: ServerConfig): { url: string; origin: string; forwardHeaders: string[] } {
  const origin = config.action_cable_origin || new URL(config.action_cable_url.replace(/^ws/, 'http')).origin
  const forwardHeaders = config.action_cable_forward_headers.split(',').map((name) => name.trim()).filter((name) => name !== '')
  return { url: config.action_cable_url, origin, forwardHeaders }
}

/** `--allowed_origins`: empty means any origin, as anycable-go. */
function allowedOrigins(config: ServerConfig): string[] {
  const hosts = config.allowed_origins.split(',').map((host) => host.trim()).filter((host) => host !== '')
  return hosts.length === 0 ? ['*'] : hosts
}

function createApp(config: ServerConfig): FastifyInstance {
  const logger = { level: config.log_level }
  // One line per poll or stream would drown the log of a real-time server (anycable-go logs none): only at debug.
  const base = { logger, logController: new LogController({ disableRequestLogging: config.log_level !== 'debug' }) }
  if (config.ssl_cert === '') return Fastify(base)
  const tls = { cert: readTls(config.ssl_cert, '--ssl_cert'), key: readTls(config.ssl_key, '--ssl_key') }
  const app = config.http2
    ? Fastify({ ...base, http2: true, https: { ...tls, allowHTTP1: true } })
    : Fastify({ ...base, https: tls })
  return app as unknown as FastifyInstance
}

function readTls(file: string, flag: string): Buffer {
  try {
    return readFileSync(file)
  } catch (error) {
    throw new ConfigError(`${flag}: cannot read ${file}: ${(error as Error).message}`)
  }
}

interface Storage {
  broker?: Broker
  sessionStore?: SessionStore
  close(): Promise<void>
}

/** Redis (`--redis_url`), a journaled memory broker (`--file_persistor_file_name`), or core's own memory broker. */
async function openStorage(config: ServerConfig, app: FastifyInstance): Promise<Storage> {
  const retention = { historyLimit: config.history_limit, historyTtl: config.history_ttl }
  if (config.redis_url !== '') {
    const common = { url: config.redis_url, keyPrefix: config.redis_key_prefix, logger: app.log }
    const broker = new RedisBroker({ ...common, ...retention })
    const sessionStore = new RedisSessionStore(common)
    return { broker, sessionStore, close: async () => { await broker.close(); await sessionStore.close() } }
  }
  if (config.file_persistor_file_name === '') return { close: async () => {} }
  const broker = new MemoryBroker(retention)
  let journal: Journal
  try {
    journal = await Journal.open(broker, {
      file: config.file_persistor_file_name,
      flushIntervalMs: config.file_persistor_write_flush_period_seconds * 1000,
      /* c8 ignore next: a failing disk write (full disk, removed volume) cannot be produced in a test */
      onError: (error) => app.log.error({ err: error }, 'the persistence journal could not write')
    })
  } catch (error) {
    await broker.close()
    throw new ConfigError(`--file_persistor_file_name: cannot open ${config.file_persistor_file_name}: ${(error as Error).message}`)
  }
  app.log.info({ file: journal.path, ...journal.report }, 'journal loaded')
  return { broker, close: async () => { await journal.close(); await broker.close() } }
}

/** Registers what the configuration asks for, in the order a user's own Fastify app would; returns the endpoints. */
async function register(app: FastifyInstance, config: ServerConfig, storage: Storage): Promise<Endpoint[]> {
  const endpoints: Endpoint[] = []
  const secret = config.secret || undefined
  const broadcastKey = config.broadcast_key || (secret === undefined ? undefined : deriveBroadcastKey(secret))
  const origins = allowedOrigins(config)
  const coreOptions: RtCoreOptions = {
    ...(storage.broker === undefined ? {} : { broker: storage.broker }),
    ...(storage.sessionStore === undefined ? {} : { sessionStore: storage.sessionStore }),
    history: { historyLimit: config.history_limit, historyTtl: config.history_ttl },
    secret,
    broadcastKey,
    broadcast: { path: config.http_broadcast_path, ...(config.public ? { authorize: () => true } : {}) },
    metrics: config.metrics_http === '' ? false : { path: config.metrics_http },
    publicStreams: config.public_streams || config.public,
    streamsSecret: config.streams_secret || undefined,
    // @rt/core always serves Turbo::StreamsChannel; without --turbo_streams (anycable-go's switch) it gets a
    // secret nobody knows, so every Turbo subscription is rejected.
    turboStreamsSecret: config.turbo_streams ? config.turbo_streams_secret || undefined : randomBytes(32).toString('hex'),
    sessionsTtl: config.sessions_ttl,
    ...jwtOptions(config)
  }
  await app.register(rtCore, coreOptions)
  endpoints.push({ method: 'POST', path: config.http_broadcast_path, what: 'Accept broadcast requests' })
  if (broadcastKey === undefined && !config.public) {
    app.log.warn(`no --broadcast_key or --secret: ${config.http_broadcast_path} refuses every request`)
  }
  if (config.action_cable_url !== '') {
    // Before the transports: every channel name that is not rt's own is served by the upstream.
    await app.register(rtActionCable, actionCableOptions(config))
    app.log.info(`channels come from Action Cable at ${config.action_cable_url}`)
  }

  if (config.sse) {
    await app.register(rtSse, { path: config.sse_path, pingInterval: config.ping_interval * 1000, allowedOrigins: origins })
    endpoints.push({ method: 'GET, POST', path: config.sse_path, what: 'Handle SSE requests' })
  }
  if (config.poll) {
    await app.register(rtLongPoll, {
      path: config.poll_path,
      pollInterval: config.poll_interval,
      flushInterval: config.poll_flush_interval,
      maxRequestSize: config.poll_max_request_size,
      keepaliveTimeout: config.poll_keepalive_timeout,
      allowedOrigins: origins
    })
    endpoints.push({
      method: 'POST',
      path: config.poll_path,
      what: 'Handle long polling requests',
      details: `poll_interval: ${config.poll_interval}, keepalive_timeout: ${config.poll_keepalive_timeout}`
    })
  }
  if (config.category_poll) {
    const publishKey = broadcastKey
    const publish = config.category_publish_path !== '' && (publishKey !== undefined || config.public)
    await app.register(rtCategoryPoll, {
      subscribePath: config.category_subscribe_path,
      ...(publish ? { enablePublish: true, publishPath: config.category_publish_path, publishKey, beforePublish: config.public ? () => true : undefined } : {}),
      maxLongpollTimeoutSeconds: config.max_longpoll_timeout_seconds,
      maxEventBufferSize: config.max_event_buffer_size,
      eventTimeToLiveSeconds: config.event_time_to_live_seconds,
      deleteEventAfterFirstRetrieval: config.delete_event_after_first_retrieval
    })
    endpoints.push({ method: 'GET, POST', path: config.category_subscribe_path, what: 'Handle golongpoll subscriptions', details: '?category=&timeout=&since_time=&last_id=' })
    if (publish) endpoints.push({ method: 'POST', path: config.category_publish_path, what: 'Accept golongpoll publications', details: 'Bearer broadcast key' })
    else if (config.category_publish_path !== '') app.log.warn(`no --broadcast_key or --secret: ${config.category_publish_path} is not served`)
  }
  if (config.sessions_api) {
    await app.register(rtSessions, { prefix: config.sessions_api_path, ...(config.allowed_origins === '' ? {} : { allowedOrigins: origins }) })
    endpoints.push({ method: 'GET, POST', path: `${config.sessions_api_path}/{id}`, what: 'Handle session API requests' })
  }
  if (config.metrics_http !== '') endpoints.push({ method: 'GET', path: config.metrics_http, what: 'Serve Prometheus metrics' })
  if (config.health_path !== '') {
    app.get(config.health_path, async (_request, reply) => reply.type('text/plain').send('OK'))
    endpoints.push({ method: 'GET', path: config.health_path, what: 'Handle health requests' })
  }
  if (!config.sse && !config.poll && !config.category_poll && !config.sessions_api) {
    app.log.warn('no transport enabled: pass --sse, --poll, --category_poll or --sessions_api')
  }
  return endpoints
}

/** One start-up line: `Handle SSE requests at http://localhost:8080/events`, as anycable-go logs it. */
export function describeEndpoint(endpoint: Endpoint, url: string): string {
  return `${endpoint.what} at ${url}${endpoint.path}${endpoint.details === undefined ? '' : ` (${endpoint.details})`}`
}

function baseUrl(config: ServerConfig, port: number): string {
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  return `${config.ssl_cert === '' ? 'http' : 'https'}://${host}:${port}`
}

/**
 * Starts rt as a standalone server, configured with the flags' names (the
 * shape of the Go long-polling wrapper's `Start`); `rt-server` calls exactly
 * this. Options are validated like flags: a bad one throws a `ConfigError`
 * naming it.
 *
 * @example
 * const server = await startServer({ sse: true, poll: true, public_streams: true, broadcast_key: 'k', port: 0 })
 * console.log(server.url)
 * await server.stop({ timeoutMs: 5000 })
 */
export async function startServer(options: StartServerOptions = {}): Promise<RtServer> {
  const resolved = resolveConfig({ values: options })
  // Without argv there is no --help or --version: the result is always a configuration.
  const config = (resolved as Extract<typeof resolved, { action: 'run' }>).config
  jwtOptions(config)
  const app = createApp(config)
  const sockets = new Set<Socket>()
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  const storage = await openStorage(config, app)
  // Registered before the plugins, so it runs after their own onClose hooks (Fastify runs them last-in, first-out).
  app.addHook('onClose', () => storage.close())
  let port: number
  let endpoints: Endpoint[]
  try {
    endpoints = await register(app, config, storage)
    await app.listen({ port: config.port, host: config.host })
    port = (app.server.address() as AddressInfo).port
  } catch (error) {
    await app.close()
    throw error
  }
  const url = baseUrl(config, port)
  app.log.info(`rt-server listening at ${url}`)
  for (const endpoint of endpoints) app.log.info(describeEndpoint(endpoint, url))

  let stopping: Promise<StopResult> | undefined
  const stop = (stopOptions: { timeoutMs?: number } = {}): Promise<StopResult> => {
    stopping ??= (async () => {
      const timeoutMs = stopOptions.timeoutMs ?? config.shutdown_timeout * 1000
      let forced = false
      const timer = setTimeout(() => {
        forced = true
        app.log.warn(`connections still open after ${timeoutMs} ms: cutting ${sockets.size}`)
        for (const socket of sockets) socket.destroy()
      }, timeoutMs)
      try {
        await app.close()
      } finally {
        clearTimeout(timer)
      }
      return { forced }
    })()
    return stopping
  }
  return { config, app, url, port, endpoints, stop }
}
