import { rtCategoryPoll } from '@rt/category-poll'
import { rtCore, type Broker } from '@rt/core'
import { rtLongPoll as rtLongPollPlugin } from '@rt/long-poll'
import { RedisBroker } from '@rt/redis'
import { rtSse as rtSsePlugin } from '@rt/sse'
import { Redis } from 'ioredis'
import Fastify, { type FastifyInstance } from 'fastify'
import { now } from '../tracker.js'
import type { BenchMessage, ServerTarget, TargetFactory, TargetOptions } from './target.js'

export const BROADCAST_KEY = 'bench-broadcast-key'

/**
 * rt as a user would run it: Fastify 5, @rt/core with public streams and a
 * broadcast key, history long enough for the scenario (rt's default is
 * AnyCable's 100 messages / 300 s; the peers keep every message).
 */
export async function rtApp (options: TargetOptions, broker?: Broker): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(rtCore, {
    publicStreams: true,
    broadcastKey: BROADCAST_KEY,
    history: { historyLimit: options.historyLimit, historyTtl: 600 },
    ...(broker === undefined ? {} : { broker })
  })
  return app
}

async function started (app: FastifyInstance, options: TargetOptions, extra: Partial<ServerTarget> = {}): Promise<ServerTarget> {
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 8192 })
  return {
    port: (app.server.address() as { port: number }).port,
    publish: (stream: number, message: BenchMessage) => app.rt.publish(`${options.streamPrefix}${stream}`, message),
    async inproc (count: number, maxMs: number) {
      const begun = now()
      let sent = 0
      while (sent < count && (sent % 256 !== 0 || now() - begun < maxMs)) {
        await app.rt.publish('bench-inproc', { s: sent })
        sent++
      }
      return { sent, ms: now() - begun }
    },
    close: async () => {
      app.server.closeAllConnections()
      await app.close()
    },
    ...extra
  }
}

/** @rt/sse on its default path. */
export const rtSse: TargetFactory = async (options) => {
  const app = await rtApp(options)
  await app.register(rtSsePlugin)
  return started(app, options)
}

/** @rt/long-poll on its default path with AnyCable's defaults (500 ms flush interval), polls held as long as the others'. */
export const rtLongPoll: TargetFactory = async (options) => {
  const app = await rtApp(options)
  await app.register(rtLongPollPlugin, { pollInterval: options.holdSeconds })
  return started(app, options)
}

/** @rt/long-poll answering as soon as anything is pending (`flushInterval: 0`), as socket.io and the ceiling do. */
export const rtLongPollNoFlush: TargetFactory = async (options) => {
  const app = await rtApp(options)
  await app.register(rtLongPollPlugin, { pollInterval: options.holdSeconds, flushInterval: 0 })
  return started(app, options)
}

/** @rt/category-poll on its default path. */
export const rtCategory: TargetFactory = async (options) => {
  const app = await rtApp(options)
  await app.register(rtCategoryPoll)
  return started(app, options)
}

/** @rt/core alone on the in-memory broker: `/_broadcast` and `rt.publish`. */
export const rtPublishMemory: TargetFactory = async (options) => started(await rtApp(options), options)

/** Deletes the keys of one bench run (its own prefix only: other users of this Redis keep theirs). */
async function dropKeys (url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    let cursor = '0'
    for (let round = 0; round < 10_000; round++) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
      if (cursor === '0') break
    }
  } finally {
    redis.disconnect()
  }
}

export const REDIS_URL = 'redis://127.0.0.1:6379'

/** @rt/core on @rt/redis's RedisBroker (Redis at 127.0.0.1:6379), keys under a per-run prefix removed at close. */
export const rtPublishRedis: TargetFactory = async (options) => {
  const keyPrefix = `rt-bench:${process.pid}:`
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix, historyLimit: options.historyLimit, historyTtl: 600 })
  const app = await rtApp(options, broker)
  const target = await started(app, options)
  return {
    ...target,
    close: async () => {
      await target.close()
      await broker.close()
      await dropKeys(REDIS_URL, keyPrefix)
    }
  }
}
