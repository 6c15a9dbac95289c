import t from 'tap'
import { admin, cleanup, REDIS_URL, uniquePrefix } from './helpers.js'
import { multiNodeSuite } from './multi-node.js'

// Three Fastify instances on one Redis server behave as one server: no sticky sessions, nothing lost.
const redis = await admin(t)
const prefix = uniquePrefix('cluster')
t.teardown(() => cleanup(redis, prefix))
multiNodeSuite(t, { connection: { url: REDIS_URL }, prefix, admin: redis })
