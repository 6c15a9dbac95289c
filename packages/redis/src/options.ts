import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import type { RetentionOptions } from '@rt/core'

/** An ioredis client: a single server (`Redis`) or a `Cluster`. */
export type RedisClient = Redis | Cluster

/**
 * Where Redis is. Either a URL, and the package creates (and closes) its own
 * client; or the nodes of a Redis Cluster, likewise; or a client you created and
 * keep ownership of (e.g. `fastify.redis` from `@fastify/redis`): it is never
 * closed by rt.
 */
export type RedisConnectionOptions =
  | {
    /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…` for TLS. */
    url: string
    client?: undefined
    cluster?: undefined
    clusterOptions?: undefined
    /**
     * Extra ioredis options for the client created from `url`. rt's defaults make
     * a call fail fast during an outage instead of waiting in a queue:
     * `enableOfflineQueue: false`, `maxRetriesPerRequest: 0`,
     * `autoResendUnfulfilledCommands: false` (a publish whose answer was lost is
     * reported to its caller, never silently sent twice). Set `commandTimeout`
     * here to bound how long a call waits on a Redis that stopped answering
     * without closing the connection.
     */
    redisOptions?: RedisOptions
  }
  | {
    /**
     * Some nodes of a Redis Cluster (ioredis discovers the others). rt creates an
     * ioredis `Cluster` with the same fail-fast settings as for `url`: a call to a
     * shard that is down or failing over rejects with `BrokerUnavailableError`
     * (503 on `/_broadcast`) instead of being queued or sent twice.
     */
    cluster: ClusterNode[]
    /** Extra ioredis Cluster options (`redisOptions` inside them applies to every node connection). */
    clusterOptions?: ClusterOptions
    url?: undefined
    client?: undefined
    redisOptions?: undefined
  }
  | {
    /** An ioredis client you own; rt duplicates it for its subscriber connection and closes only that. */
    client: RedisClient
    url?: undefined
    redisOptions?: undefined
    cluster?: undefined
    clusterOptions?: undefined
  }

/** Where connection problems are reported. Fastify's `app.log` (pino) and `console` both fit. */
export interface RedisLogger {
  warn(details: object, message: string): void
  error(details: object, message: string): void
  /** Optional: told when a lost connection is back. */
  info?(details: object, message: string): void
}

/** Options shared by {@link RedisBroker} and {@link RedisSessionStore}. */
export interface RedisCommonOptions {
  /**
   * Prepended to every key and pub/sub channel rt uses, so several apps (or test
   * runs) can share one Redis. Default `"rt:"`.
   */
  keyPrefix?: string
  /**
   * Receives connection loss and recovery (one warning per outage, not one per
   * retry) and errors thrown by stream listeners. Default: `console`.
   */
  logger?: RedisLogger
  /**
   * Name (`CLIENT SETNAME`) of the connections rt opens: the client created from
   * `url` gets it as is, the broker's subscriber connection gets `<name>:subscriber`.
   * Shows in `CLIENT LIST`. Default `"rt"`.
   */
  connectionName?: string
}

/** Options of {@link RedisBroker}. */
export type RedisBrokerOptions = RedisConnectionOptions & RedisCommonOptions & RetentionOptions & {
  /**
   * Seconds a stream's keys (its epoch, offset counter and history) are kept
   * after its last publish or position read. When they expire the stream starts
   * again in a new epoch, and readers holding old positions are told their history
   * is gone. Default: 10 × `historyTtl` (AnyCable's rule), or forever when
   * `historyTtl` is `Infinity`.
   */
  streamTtl?: number
  /**
   * On a Redis Cluster, how published messages reach the nodes' subscriber
   * connections. `'sharded'` (default; Redis 7): SPUBLISH/SSUBSCRIBE, a message
   * travels only within the shard that owns its stream, and each node keeps one
   * subscriber connection per shard. `'classic'`: PUBLISH/SUBSCRIBE, every
   * cluster node carries every message (for Redis 6 clusters). A single server
   * always uses PUBLISH.
   */
  pubsub?: 'sharded' | 'classic'
  /**
   * Most publishes to one stream sent to Redis in one script run. Publishes
   * made in the same task (e.g. `Promise.all` over many, or a loop that does
   * not await each) are queued until the task ends; each run
   * of consecutive publishes to one stream, up to this many, is applied by one
   * script call, in call order. Default 100. `1` sends every publish in a
   * script call of its own.
   */
  publishBatch?: number
}

/** Options of {@link RedisSessionStore}. */
export type RedisSessionStoreOptions = RedisConnectionOptions & RedisCommonOptions

/** The default logger: one line on the console per event. */
export const consoleLogger: RedisLogger = {
  warn: (details, message) => console.warn(message, describe(details)),
  error: (details, message) => console.error(message, describe(details))
}

function describe(details: object): string {
  const err = (details as { err?: unknown }).err
  return err instanceof Error ? err.message : ''
}

export function fail(message: string): never {
  throw new TypeError(`@rt/redis: ${message}`)
}

/** Checks the connection part of the options; returns the key prefix. */
export function checkCommon(options: RedisConnectionOptions & RedisCommonOptions): string {
  if (typeof options !== 'object' || options === null) fail('options must be an object with `url`, `cluster` or `client`')
  const hasUrl = options.url !== undefined
  const hasClient = options.client !== undefined
  const hasCluster = options.cluster !== undefined
  if (Number(hasUrl) + Number(hasClient) + Number(hasCluster) !== 1) fail('pass exactly one of `url`, `cluster` and `client`')
  if (hasUrl && (typeof options.url !== 'string' || options.url === '')) fail('url must be a non-empty string')
  if (hasClient && typeof options.client?.evalsha !== 'function') fail('client must be an ioredis client')
  if (!hasUrl && options.redisOptions !== undefined) fail('redisOptions only apply with `url`')
  if (hasCluster && (!Array.isArray(options.cluster) || options.cluster.length === 0)) fail('cluster must be a non-empty array of nodes')
  if (!hasCluster && options.clusterOptions !== undefined) fail('clusterOptions only apply with `cluster`')
  const keyPrefix = options.keyPrefix ?? 'rt:'
  if (typeof keyPrefix !== 'string') fail('keyPrefix must be a string')
  const name = options.connectionName ?? 'rt'
  if (typeof name !== 'string' || !/^[!-~]+$/.test(name)) fail('connectionName must be printable ASCII without spaces')
  const logger = options.logger
  if (logger !== undefined && (typeof logger.warn !== 'function' || typeof logger.error !== 'function')) {
    fail('logger must have warn() and error()')
  }
  return keyPrefix
}
