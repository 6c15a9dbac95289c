import type { Test } from 'tap'
import type { StreamMessage } from '@rt/core'
import { RedisBroker, type RedisConnectionOptions } from '../src/index.js'
import { recorder, sleep, until } from './helpers.js'

/** Publishes until Redis takes it again (calls fail fast while it is down). */
async function publishOnceUp(broker: RedisBroker, stream: string, data: unknown): Promise<StreamMessage> {
  for (let i = 0; i < 200; i++) {
    try {
      return await broker.publish(stream, data)
    } catch {
      await sleep(50)
    }
  }
  throw new Error('timed out waiting for Redis to take publishes again')
}

/**
 * A Redis (a server, or the master of `stream` in a cluster) that restarts with no
 * data: a live reader continues in the new epoch, a reader resuming from a position
 * of the old one is told its history is gone.
 */
export async function emptyRestart(t: Test, connection: RedisConnectionOptions, prefix: string, stream: string, restart: () => Promise<void>): Promise<void> {
  const logger = recorder().logger
  const publisher = new RedisBroker({ ...connection, keyPrefix: prefix, logger })
  const reader = new RedisBroker({ ...connection, keyPrefix: prefix, logger })
  t.teardown(() => Promise.all([publisher.close(), reader.close()]))
  const live: StreamMessage[] = []
  reader.subscribe(stream, (message) => live.push(message))
  await reader.position(stream)
  for (let n = 1; n <= 5; n++) await publisher.publish(stream, n)
  await until(() => live.length === 5, 'delivery before the restart')
  const old = { offset: 5, epoch: live[4]!.epoch }

  await restart()
  const first = await publishOnceUp(publisher, stream, 6)
  t.not(first.epoch, old.epoch, 'the emptied stream starts a new epoch')
  t.equal(first.offset, 1)
  for (let n = 7; n <= 8; n++) await publisher.publish(stream, n)
  await until(() => live.length === 8, 'the live reader to continue')
  t.same(live.map((m) => m.data), [1, 2, 3, 4, 5, 6, 7, 8], 'the live reader continues in the new epoch')
  t.same(live.slice(5).map((m) => [m.offset, m.epoch]), [[1, first.epoch], [2, first.epoch], [3, first.epoch]])
  const resumed = await reader.history(stream, { after: old })
  t.equal(resumed.complete, false, 'a reader resuming from the old epoch is told of the gap')
  t.equal(resumed.epoch, first.epoch)
}
