import type { Broker, StreamMessage, StreamPosition } from './broker.js'

export interface CatchUp {
  /** Messages after the position, oldest first. */
  messages: StreamMessage[]
  /** Where the reader stands after these messages. */
  position: StreamPosition
  /** `true` when messages between the position and `messages[0]` are gone (evicted, or the epoch changed). */
  gap: boolean
}

/**
 * Reads what a live reader missed since `position`. Unlike an explicit history
 * request (which is rejected when it cannot be served whole), a live reader
 * always moves on: when its epoch is gone it continues from the start of the
 * stream's current epoch, and `gap` says that something may have been missed.
 */
export async function catchUp(broker: Broker, stream: string, position: StreamPosition): Promise<CatchUp> {
  const result = await broker.history(stream, { after: position })
  if (result.complete) {
    return { messages: result.messages, position: advance(position, result.messages), gap: false }
  }
  if (result.epoch === '' ) return { messages: [], position, gap: false }
  if (result.epoch !== position.epoch) {
    const fresh = await broker.history(stream, { after: { offset: 0, epoch: result.epoch } })
    const start = { offset: 0, epoch: result.epoch }
    // A reader that had read nothing of its epoch (a stream that was empty, then dropped) misses
    // something only if the new epoch lost messages too.
    const gap = position.offset > 0 || !fresh.complete
    return { messages: fresh.messages, position: advance(start, fresh.messages), gap }
  }
  return { messages: result.messages, position: advance(position, result.messages), gap: true }
}

/** The position after reading `messages` (transient messages do not move it). */
export function advance(position: StreamPosition, messages: readonly StreamMessage[]): StreamPosition {
  let { offset, epoch } = position
  for (const message of messages) {
    if (message.offset === 0) continue
    offset = message.offset
    epoch = message.epoch
  }
  return offset === position.offset && epoch === position.epoch ? position : { offset, epoch }
}
