export { RedisBroker } from './redis-broker.js'
export { RedisPresenceStore } from './redis-presence.js'
export { RedisSessionStore } from './redis-session-store.js'
export type {
  RedisBrokerOptions,
  RedisSessionStoreOptions,
  RedisConnectionOptions,
  RedisCommonOptions,
  RedisLogger,
  RedisClient
} from './options.js'
