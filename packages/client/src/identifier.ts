import type { SubscriptionTarget } from './types.js'

/** The identifier string for a target, with sorted keys and no spaces as AnyCable builds them. */
export function identifierOf(target: SubscriptionTarget): string {
  const fields: Record<string, unknown> = 'channel' in target
    ? { ...target.params, channel: target.channel }
    : 'stream' in target
      ? { channel: '$pubsub', stream_name: target.stream }
      : { channel: '$pubsub', signed_stream_name: target.signedStream }
  return JSON.stringify(fields, Object.keys(fields).sort())
}
