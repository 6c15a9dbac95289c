import { BrokerUnavailableError } from '@rt/core'
import { Cluster, Redis, ReplyError, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { RedisClient, RedisCommonOptions, RedisConnectionOptions, RedisLogger } from './options.js'
import { consoleLogger } from './options.js'

/**
 * Options of a command connection rt creates: during an outage a call fails at
 * once (no offline queue), a call in flight when the connection drops fails
 * instead of being resent (a resent publish could be applied twice), and ioredis
 * keeps reconnecting in the background.
 */
const FAIL_FAST: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false
}

/**
 * The same for a Cluster rt creates: no resend of a command whose node
 * connection closed (ioredis' `retryDelayOnFailover` would send a publish again
 * that Redis may have applied). The cluster's offline queue stays on: it only
 * holds commands while a node connection is being opened, and {@link Connection}
 * refuses calls while the cluster itself is down. CLUSTERDOWN and TRYAGAIN
 * answers mean the command was not run; ioredis retries those within
 * `maxRedirections` and then rejects.
 */
const CLUSTER_FAIL_FAST: ClusterOptions = {
  retryDelayOnFailover: 0
}

/**
 * Answers of a cluster that is failing over or resharding: the command was not
 * run, the shard is unavailable for now. They are outages, not errors of the call.
 */
const CLUSTER_UNAVAILABLE = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|READONLY) /

/**
 * Options of the subscriber connection: (re)subscriptions wait for the
 * connection instead of failing, and ioredis resubscribes after a reconnect.
 * No ready check: ioredis writes SUBSCRIBE as soon as the socket is connected
 * (Redis accepts it while loading), which puts the connection in subscriber
 * mode before its INFO ready check, so the check fails and the connection is
 * recycled without the subscriptions it just made.
 */
const PATIENT: RedisOptions = {
  enableReadyCheck: false,
  enableOfflineQueue: true,
  maxRetriesPerRequest: null,
  autoResendUnfulfilledCommands: true,
  autoResubscribe: true,
  commandTimeout: undefined
}

/** Statuses of a client that has not finished its first connection attempt. */
const STARTING = new Set(['wait', 'connecting', 'connect'])

/** What {@link watch} reports besides logging. */
export interface WatchHooks {
  ready?: () => void
  close?: () => void
}

/**
 * Logs a connection's losses and recoveries (once per outage, however many
 * retries ioredis makes) and reports them to `hooks`. Returns the function that
 * removes the listeners.
 */
export function watch(client: RedisClient, label: string, logger: RedisLogger, hooks: WatchHooks = {}): () => void {
  let up = client.status === 'ready'
  let reported = false
  const onReady = (): void => {
    if (reported) logger.info?.({}, `@rt/redis: ${label} connection to Redis restored`)
    up = true
    reported = false
    hooks.ready?.()
  }
  const onError = (err: Error): void => {
    if (reported) return
    reported = true
    logger.warn({ err }, `@rt/redis: ${label} connection to Redis failed (${err.message}); ioredis keeps retrying`)
  }
  const onClose = (): void => {
    if (up && !reported) {
      reported = true
      logger.warn({}, `@rt/redis: ${label} connection to Redis lost; ioredis is reconnecting`)
    }
    up = false
    hooks.close?.()
  }
  client.on('ready', onReady)
  client.on('error', onError)
  client.on('close', onClose)
  return () => {
    client.off('ready', onReady)
    client.off('error', onError)
    client.off('close', onClose)
  }
}

/**
 * A new connection to the same Redis with other options (the broker's
 * subscriber); on a Cluster with `sharded`, ioredis' sharded subscribers (one
 * connection per shard, following failovers).
 */
export function duplicate(client: RedisClient, connectionName: string, sharded = false): RedisClient {
  if (client instanceof Cluster) {
    return client.duplicate(undefined, { shardedSubscribers: sharded, redisOptions: { ...client.options.redisOptions, ...PATIENT, connectionName } })
  }
  return client.duplicate({ ...PATIENT, connectionName })
}

/**
 * Turns what ioredis rejected with into what rt's callers expect: an answer from
 * Redis (`ReplyError`, e.g. a wrong key type) stays as it is, except those of a
 * cluster failing over (CLUSTERDOWN, TRYAGAIN, …, the command was not run); anything else
 * (closed connection, refused connection, timeout) means Redis is unreachable
 * and becomes a `BrokerUnavailableError` with the original as `cause`.
 */
export function unavailable(error: unknown, what: string): Error {
  if (error instanceof BrokerUnavailableError) return error
  if (error instanceof (ReplyError as typeof Error) && !CLUSTER_UNAVAILABLE.test((error as Error).message)) return error as Error
  const reason = error instanceof Error ? error.message : String(error)
  return new BrokerUnavailableError(`@rt/redis: ${what} failed: Redis is unreachable (${reason})`, { cause: error })
}

/** The command connection of a broker or session store: the client, who owns it, and whether it can take a call now. */
export class Connection {
  readonly client: RedisClient
  /** Whether rt created the client (and so closes it). */
  readonly owned: boolean
  readonly logger: RedisLogger
  readonly connectionName: string
  private connectedOnce: boolean
  private starting: Promise<void> | undefined
  private closed = false
  private readonly unwatch: () => void

  constructor(options: RedisConnectionOptions & RedisCommonOptions, label: string) {
    this.logger = options.logger ?? consoleLogger
    this.connectionName = options.connectionName ?? 'rt'
    if (options.client !== undefined) {
      this.client = options.client
      this.owned = false
    } else if (options.cluster !== undefined) {
      const clusterOptions = options.clusterOptions ?? {}
      this.client = new Cluster(options.cluster, {
        ...CLUSTER_FAIL_FAST,
        ...clusterOptions,
        redisOptions: { connectionName: this.connectionName, ...FAIL_FAST, ...clusterOptions.redisOptions }
      })
      this.owned = true
    } else {
      this.client = new Redis(options.url, { connectionName: this.connectionName, ...FAIL_FAST, ...options.redisOptions })
      this.owned = true
    }
    this.connectedOnce = this.client.status === 'ready'
    this.unwatch = watch(this.client, label, this.logger, { ready: () => (this.connectedOnce = true) })
  }

  /**
   * `undefined` when a command can be sent now; a promise while the client makes
   * its first connection (so calls made right after start-up wait for it instead
   * of failing). Throws `BrokerUnavailableError` when the client is closed or
   * Redis is unreachable: a call is never queued to be sent some time later.
   */
  ready(what: string): Promise<void> | undefined {
    if (this.closed) throw new BrokerUnavailableError(`@rt/redis: ${what} failed: closed`)
    const status = this.client.status
    if (status === 'ready') return undefined
    if (!this.connectedOnce && STARTING.has(status)) return (this.starting ??= this.firstConnection(what))
    throw new BrokerUnavailableError(`@rt/redis: ${what} failed: Redis is unreachable (connection ${status}); nothing was sent`)
  }

  /**
   * Runs `send` now when the connection is ready (so calls reach Redis in the
   * order they were made), after the first connection while it is being made,
   * and rejects with `BrokerUnavailableError` when Redis is unreachable.
   */
  call<T>(what: string, send: () => Promise<T>): Promise<T> {
    let waiting: Promise<void> | undefined
    try {
      waiting = this.ready(what)
    } catch (error) {
      return Promise.reject(error)
    }
    const attempt = (): Promise<T> => send().catch((error: unknown) => {
      throw unavailable(error, what)
    })
    return waiting === undefined ? attempt() : waiting.then(attempt)
  }

  /** Closes the client if rt created it; a client passed in only loses rt's listeners. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.unwatch()
    if (this.owned) this.client.disconnect()
  }

  private firstConnection(what: string): Promise<void> {
    const client = this.client
    return new Promise<void>((resolve, reject) => {
      const settle = (error?: Error): void => {
        client.off('ready', onReady)
        client.off('error', onError)
        client.off('end', onEnd)
        this.starting = undefined
        if (error === undefined) resolve()
        else reject(unavailable(error, what))
      }
      const onReady = (): void => settle()
      const onError = (error: Error): void => settle(error)
      const onEnd = (): void => settle(new Error('connection closed'))
      client.on('ready', onReady)
      client.on('error', onError)
      client.on('end', onEnd)
      if (client.status === 'wait') client.connect().catch(() => undefined)
    })
  }
}
