import type { Broker, HistoryResult, StreamMessage, StreamPosition } from './broker.js'

export interface CatchUp {
  /** Messages after the position, oldest first. */
  messages: StreamMessage[]
  /** Where the reader stands after these messages. */
  position: StreamPosition
  /** `true` when messages between the position and `messages[0]` are gone (evicted, or the epoch changed). */
  gap: boolean
}

/**
 * History after a position, for a reader: like `broker.history`, except that a
 * position at offset 0 of an epoch the stream no longer has (a stream that was
 * empty, dropped, then written again) reads the current epoch from its start —
 * the reader had read nothing, so it misses nothing unless the new epoch lost
 * messages too (then `complete` is false).
 */
export async function historyAfter(broker: Broker, stream: string, position: StreamPosition): Promise<HistoryResult> {
  const result = await broker.history(stream, { after: position })
  if (result.complete || position.offset > 0 || result.epoch === '' || result.epoch === position.epoch) return result
  return broker.history(stream, { after: { offset: 0, epoch: result.epoch } })
}

/**
 * Reads what a live reader missed since `position`. Unlike an explicit history
 * request (which is rejected when it cannot be served whole), a live reader
 * always moves on: when its epoch is gone it continues from the start of the
 * stream's current epoch, and `gap` says that something may have been missed.
 */
export async function catchUp(broker: Broker, stream: string, position: StreamPosition): Promise<CatchUp> {
  const result = await historyAfter(broker, stream, position)
  if (result.epoch === '') return { messages: [], position, gap: false }
  if (result.epoch === position.epoch || result.complete) {
    const from = result.epoch === position.epoch ? position : { offset: 0, epoch: result.epoch }
    return { messages: result.messages, position: advance(from, result.messages), gap: !result.complete }
  }
  // The reader's epoch is gone: continue from the start of the current one.
  const fresh = await broker.history(stream, { after: { offset: 0, epoch: result.epoch } })
  return { messages: fresh.messages, position: advance({ offset: 0, epoch: result.epoch }, fresh.messages), gap: true }
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
