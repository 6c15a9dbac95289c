import { createHash } from 'node:crypto'
import type { RedisClient } from './options.js'

/**
 * A Lua script run with EVALSHA, falling back to EVAL (which also caches it on
 * the server) when Redis answers NOSCRIPT, e.g. after a restart or SCRIPT FLUSH.
 * Unlike ioredis' `defineCommand`, it does not add methods to a client it was
 * handed. The command is written to the connection synchronously, so calls made
 * one after the other reach Redis in that order.
 */
export class LuaScript {
  readonly sha: string

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  run(client: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return client.evalsha(this.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      return client.eval(this.source, keys.length, ...keys, ...args)
    })
  }
}
