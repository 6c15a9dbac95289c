import t from 'tap'
import { sessionStoreContract } from '@rt/core/testing'
import { RedisSessionStore } from '../src/index.js'
import { admin, cleanup, REDIS_URL, recorder, sleep, uniquePrefix } from './helpers.js'

const redis = await admin(t)
const prefix = uniquePrefix('sessions')
t.teardown(() => cleanup(redis, prefix))
let created = 0

sessionStoreContract(t, {
  create: async () => new RedisSessionStore({ url: REDIS_URL, keyPrefix: `${prefix}${created++}:`, logger: recorder().logger }),
  elapse: (ms) => sleep(ms)
})
