import { randomUUID } from 'node:crypto'
import type { Broker } from '../broker.js'
import type { StoredSubscription } from '../session-store.js'

/**
 * Whispers: client-to-client messages (typing indicators, cursors). The data
 * goes to the subscription's whisper stream as a transient broadcast that
 * skips the sender's session, so every other subscriber of the stream, on any
 * process, gets it as an ordinary message and nothing is kept in history.
 * `false` when the subscription may not whisper.
 */
export async function whisper(broker: Broker, subscription: StoredSubscription, sid: string, data: unknown): Promise<boolean> {
  if (subscription.whisper === undefined) return false
  await broker.publish(subscription.whisper, data, { meta: { transient: true, exclude_socket: sid, transient_id: randomUUID() } })
  return true
}
