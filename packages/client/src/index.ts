export { createConsumer, Consumer, type ConsumerOptions, type Resume, type Subscription } from './consumer.js'
export { createSseParser, type SseEvent } from './sse-parser.js'
export type { Position, SubscriptionTarget, SubscriptionCallbacks, MessageMeta, TransportName, ServerMessage, Command, FetchCredentials, PresenceEvent } from './types.js'
