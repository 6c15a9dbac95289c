import t from 'tap'
import { brokerContract } from '@rt/core/testing'
import { RedisBroker } from '../src/index.js'
import { admin, cleanup, REDIS_URL, recorder, sleep, uniquePrefix } from './helpers.js'

// The very contract MemoryBroker passes, against Redis: one fresh key prefix per broker.
const redis = await admin(t)
const prefix = uniquePrefix('contract')
t.teardown(() => cleanup(redis, prefix))
let created = 0

brokerContract(t, {
  create: async ({ historyLimit, historyTtl }) =>
    new RedisBroker({ url: REDIS_URL, keyPrefix: `${prefix}${created++}:`, historyLimit, historyTtl, logger: recorder().logger }),
  elapse: (ms) => sleep(ms)
})
