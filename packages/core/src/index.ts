export * from './broker.js'
export { RetentionRules, checkRetentionPolicy, type RetentionPolicy, type StreamSelector } from './retention.js'
export { MemoryBroker, newEpoch, readHistory, type MemoryBrokerOptions, type RetentionOptions, type RestoredStream } from './memory-broker.js'
export { catchUp, advance, historyAfter, type CatchUp } from './stream-reader.js'
export { Metrics } from './metrics.js'
export { signStream, verifySignedStream, safeEqual, hmacHex, deriveBroadcastKey } from './signing.js'
export { decodeBroadcastData, type BroadcastAuthorizer } from './broadcast.js'
export { acceptAnyBodyAsText } from './raw-body.js'
export type { RtCoreOptions } from './options.js'
export { rtCore, rtCore as default, type RtCore } from './plugin.js'
export { requireRtCore, readManifest, RT_CORE_VERSION, type RtPluginManifest } from './identity.js'
export { MemorySessionStore, type SessionStore, type SessionState, type StoredSubscription } from './session-store.js'
export * from './hub/index.js'
export { originMatcher, checkAllowedOrigins, corsOrigin, originGuard, isSameOrigin, requestHost } from './origins.js'
export { Journal, readJournal, isJournalable, type JournalOptions, type JournalLoadReport, type BrokerObserver } from './journal.js'
export {
  DEFAULT_LIMITS, MAX_STORED_JSON_DEPTH, resolveLimits, exceedsJsonDepth, parseBoundedJson, nameProblem, identifierProblem, encodeMessageData,
  type Limits, type BoundedJson
} from './limits.js'
