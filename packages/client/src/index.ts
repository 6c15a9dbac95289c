export { createConsumer, Consumer, type ConsumerOptions, type Subscription } from './consumer.js'
export { createSseParser, type SseEvent } from './sse-parser.js'
export type { Position, SubscriptionTarget, SubscriptionCallbacks, MessageMeta, TransportName, ServerMessage, Command, PresenceEvent } from './types.js'
