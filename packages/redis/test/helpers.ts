import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import type { RedisLogger } from '../src/index.js'

/** The Redis the tests run against. They fail (never skip) when it does not answer. */
export const REDIS_URL = process.env.RT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

export { sleep }

/** A key prefix no other test run uses. */
export function uniquePrefix(label: string): string {
  return `rt-test:${label}:${randomBytes(4).toString('hex')}:`
}

/**
 * A plain client for looking at Redis from the outside (keys, CLIENT KILL), closed
 * after the test. Throws, failing the test, when Redis does not answer: these
 * tests need a real Redis, in CI and everywhere else.
 */
export async function admin(t: Test): Promise<Redis> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => undefined)
  try {
    await client.connect()
    await client.ping()
  } catch (error) {
    client.disconnect()
    throw new Error(`@rt/redis tests need a Redis server at ${REDIS_URL} (${(error as Error).message}); start redis-server or set RT_TEST_REDIS_URL`)
  }
  t.teardown(() => client.disconnect())
  return client
}

/** Deletes every key under `prefix`. */
export async function cleanup(client: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    if (keys.length > 0) await client.del(...keys)
    cursor = next
  } while (cursor !== '0')
}

/** A logger that records what it is told. */
export function recorder(): { logger: Required<RedisLogger>; warnings: string[]; errors: string[]; infos: string[] } {
  const warnings: string[] = []
  const errors: string[] = []
  const infos: string[] = []
  return {
    logger: {
      warn: (_details, message) => warnings.push(message),
      error: (_details, message) => errors.push(message),
      info: (_details, message) => infos.push(message)
    },
    warnings,
    errors,
    infos
  }
}

/** Waits (polling) until `check` holds; throws after about 10 s. Not a timing assertion: only a bound on a hang. */
export async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !check(); i++) await sleep(5)
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}

/** Like {@link until} with an asynchronous check (e.g. asking Redis). */
export async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await check()) return
    await sleep(5)
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** The id of the connection named `name` (CLIENT LIST), or undefined. */
export async function clientId(client: Redis, name: string): Promise<string | undefined> {
  const list = await client.client('LIST') as string
  for (const line of list.split('\n')) {
    if (line.includes(` name=${name} `)) return /(?:^|\s)id=(\d+)/.exec(line)?.[1]
  }
  return undefined
}
