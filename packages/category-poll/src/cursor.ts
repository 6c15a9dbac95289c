/**
 * Where a subscriber stands in a category, and which events it has not seen.
 *
 * golongpoll's cursor is `since_time` plus `last_id`. Here a `last_id` that
 * names an event of the category's current epoch is a position: everything
 * after that offset is new, whatever the timestamps (same-millisecond events
 * are never skipped, and a clock step cannot hide an event). Otherwise the
 * timestamp decides, as in golongpoll: without `last_id`, events strictly after
 * `since_time`; with an unknown `last_id` (evicted, another epoch, a golongpoll
 * UUID), events at or after `since_time`, so the client may see a duplicate but
 * never misses one.
 */
import { parseMessageId, type Broker, type StreamMessage, type StreamPosition } from '@rt/core'
import type { SubscribeQuery } from './handler/query.js'

/** What a subscriber may see of a category: golongpoll's buffer size and TTL, as a view over the broker's history. */
export interface CategoryView {
  maxEventBufferSize: number
  /** Infinity: forever. */
  eventTtlMs: number
  maxEventsPerResponse: number
}

export interface Backlog {
  /** Unseen events already in history, oldest first, at most one page. */
  events: StreamMessage[]
  /** Whether a live message is one the subscriber has not seen. */
  unseen: (message: StreamMessage) => boolean
}

/** The subscriber's position, when its `last_id` resolves in the category's current epoch. */
async function resolvePosition(broker: Broker, query: SubscribeQuery): Promise<{ position: StreamPosition; messages: StreamMessage[]; lastOffset: number } | undefined> {
  const parsed = query.lastId === undefined ? undefined : parseMessageId(query.lastId)
  if (parsed === undefined || parsed.stream !== query.category) return undefined
  const position = { offset: parsed.offset, epoch: parsed.epoch }
  const result = await broker.history(query.category, { after: position })
  if (result.epoch !== parsed.epoch || parsed.offset > result.lastOffset) return undefined
  return { position, messages: result.messages, lastOffset: result.lastOffset }
}

/** Reads the events a subscriber has not seen yet, within the view, and how to recognise later ones. */
export async function readBacklog(broker: Broker, query: SubscribeQuery, view: CategoryView, now: number): Promise<Backlog> {
  const { sinceTime } = query
  if (sinceTime === undefined) {
    // No since_time: only events published after this request (the live subscription sees them all).
    return { events: [], unseen: () => true }
  }
  let unseen: (message: StreamMessage) => boolean
  let messages: StreamMessage[]
  let lastOffset: number
  const resolved = await resolvePosition(broker, query)
  if (resolved !== undefined) {
    const { position } = resolved
    unseen = (message) => message.epoch === position.epoch ? message.offset > position.offset : message.timestamp >= sinceTime
    ;({ messages, lastOffset } = resolved)
  } else {
    const inclusive = query.lastId !== undefined
    unseen = inclusive ? (message) => message.timestamp >= sinceTime : (message) => message.timestamp > sinceTime
    const result = await broker.history(query.category, { since: inclusive ? sinceTime : sinceTime + 1 })
    ;({ messages, lastOffset } = result)
  }
  const oldestVisible = lastOffset - view.maxEventBufferSize
  const expiredBefore = now - view.eventTtlMs
  const events: StreamMessage[] = []
  for (const message of messages) {
    if (events.length === view.maxEventsPerResponse) break
    if (message.offset > oldestVisible && message.timestamp > expiredBefore && unseen(message)) events.push(message)
  }
  return { events, unseen }
}

/** Whether a message delivered live (or held while history was read) counts as an event for this subscriber. */
export function isVisibleLive(message: StreamMessage, view: CategoryView, now: number): boolean {
  // Transient messages have no position a golongpoll client could resume from: they are not category events.
  return message.offset > 0 && message.timestamp > now - view.eventTtlMs
}
