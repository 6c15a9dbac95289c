import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { rtCore, type Broker } from '@rt/core'
import { RedisBroker, RedisSessionStore } from '@rt/redis'
import { rtLongPoll } from '@rt/long-poll'
import { rtActionCable, type RtActionCableOptions } from '../src/index.js'

const REDIS_URL = 'redis://127.0.0.1:6379'

/** A key prefix of this test file's own on the shared Redis, removed (only its keys, never FLUSHALL) at teardown. */
export function redisPrefix(t: { teardown(fn: () => unknown): void }, name: string): string {
  const prefix = `rt-test-${name}-${randomBytes(4).toString('hex')}:`
  t.teardown(async () => {
    const admin = new Redis(REDIS_URL)
    let cursor = '0'
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) await admin.del(...keys)
      cursor = next
    } while (cursor !== '0')
    await admin.quit()
  })
  return prefix
}

/** One rt process on the shared Redis in this process: @rt/core, the bridge and long polling. */
export async function redisNode(
  t: { teardown(fn: () => unknown): void },
  options: { prefix: string; bridge: RtActionCableOptions; wrap?: (broker: Broker) => Broker }
): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify()
  const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: options.prefix })
  const sessionStore = new RedisSessionStore({ url: REDIS_URL, keyPrefix: options.prefix })
  await app.register(rtCore, { broker: options.wrap === undefined ? broker : options.wrap(broker), sessionStore })
  await app.register(rtActionCable, options.bridge)
  await app.register(rtLongPoll, { pollInterval: 1, flushInterval: 10 })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    await app.close()
    await sessionStore.close()
    await broker.close()
  })
  return { app, url }
}
