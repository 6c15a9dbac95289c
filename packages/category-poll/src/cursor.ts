/**
 * Where a subscriber stands in a category, and which events it has not seen.
 *
 * golongpoll's cursor is `since_time` plus `last_id`. Here a `last_id` that
 * names an event of the category's current epoch is a position: everything
 * after that offset is new, whatever the timestamps (same-millisecond events
 * are never skipped, and a clock step cannot hide an event). Otherwise the
 * timestamp decides, as in golongpoll: without `last_id`, events strictly after
 * `since_time`; with an unknown `last_id` (another epoch, a golongpoll UUID),
 * events at or after `since_time`, so the client may see a duplicate but
 * never misses one.
 *
 * When events the cursor asks for are gone (evicted by retention, hidden by the
 * buffer size, or in an epoch whose history was lost), the answer says so with
 * `incomplete`.
 */
import { parseMessageId, type Broker, type HistoryResult, type StreamMessage, type StreamPosition } from '@rt/core'
import { epochTag, packedEpoch, parseCategoryEventId } from './event-id.js'
import type { SubscribeQuery } from './handler/query.js'

/** What a subscriber may see of a category: golongpoll's buffer size and TTL, checked on every read. */
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
  /** Events the cursor asked for are no longer retained. */
  incomplete: boolean
}

/** A `last_id` read as a position: an rt message id, or one of our UUIDs (whose epoch may only be known by its tag). */
type AskedPosition = { offset: number; epoch: string } | { offset: number; tag: string }

function askedPosition(query: SubscribeQuery): AskedPosition | undefined {
  if (query.lastId === undefined) return undefined
  const fromUuid = parseCategoryEventId(query.lastId)
  if (fromUuid !== undefined) return { offset: fromUuid.offset, tag: fromUuid.epochTag }
  const parsed = parseMessageId(query.lastId)
  return parsed === undefined || parsed.stream !== query.category ? undefined : { offset: parsed.offset, epoch: parsed.epoch }
}

interface Resolved {
  /** The position, when it is one of the category's current epoch. */
  position: StreamPosition | undefined
  result: HistoryResult | undefined
  /** The id named an rt position whose history is gone (another epoch). */
  lost: boolean
}

/** Resolves a `last_id` in the category's current epoch. */
async function resolvePosition(broker: Broker, query: SubscribeQuery): Promise<Resolved> {
  const asked = askedPosition(query)
  if (asked === undefined) return { position: undefined, result: undefined, lost: false }
  // rt's epochs are packed whole into the id; another broker's epochs only by a hash, compared with the current one.
  const guess = 'epoch' in asked ? asked.epoch : packedEpoch(asked.tag)
  let result = await broker.history(query.category, { after: { offset: asked.offset, epoch: guess } })
  let epoch = guess
  if (result.epoch !== guess && 'tag' in asked && result.epoch !== '' && epochTag(result.epoch) === asked.tag) {
    epoch = result.epoch
    result = await broker.history(query.category, { after: { offset: asked.offset, epoch } })
  }
  if (result.epoch !== epoch || asked.offset > result.lastOffset) return { position: undefined, result: undefined, lost: true }
  return { position: { offset: asked.offset, epoch }, result, lost: false }
}

/**
 * Whether events at or after `sinceTime` may have been evicted: the message
 * just before the oldest one returned is gone, and its timestamp with it.
 */
async function evictedSince(broker: Broker, category: string, result: HistoryResult): Promise<boolean> {
  const first = result.messages[0]
  if (first === undefined || first.offset < 2) return false
  const before = await broker.history(category, { after: { offset: first.offset - 2, epoch: first.epoch }, limit: 1 })
  return !before.complete
}

/** Reads the events a subscriber has not seen yet, within the view, and how to recognise later ones. */
export async function readBacklog(broker: Broker, query: SubscribeQuery, view: CategoryView, now: number): Promise<Backlog> {
  const { sinceTime } = query
  if (sinceTime === undefined) {
    // No since_time: only events published after this request (the live subscription sees them all).
    return { events: [], unseen: () => true, incomplete: false }
  }
  let unseen: (message: StreamMessage) => boolean
  let result: HistoryResult
  let incomplete: boolean
  const resolved = await resolvePosition(broker, query)
  if (resolved.position !== undefined) {
    const position = resolved.position
    unseen = (message) => message.epoch === position.epoch ? message.offset > position.offset : message.timestamp >= sinceTime
    result = resolved.result!
    incomplete = !result.complete
  } else {
    const inclusive = query.lastId !== undefined
    unseen = inclusive ? (message) => message.timestamp >= sinceTime : (message) => message.timestamp > sinceTime
    result = await broker.history(query.category, { since: inclusive ? sinceTime : sinceTime + 1 })
    incomplete = resolved.lost || await evictedSince(broker, query.category, result)
  }
  const oldestVisible = result.lastOffset - view.maxEventBufferSize
  const expiredBefore = now - view.eventTtlMs
  const events: StreamMessage[] = []
  // The history read matched the cursor already (position or time): what is left is the category's view.
  for (const message of result.messages) {
    if (events.length === view.maxEventsPerResponse) break
    if (message.offset > oldestVisible && message.timestamp > expiredBefore) events.push(message)
    // Retained by the broker but beyond what the category keeps: gone for this client too.
    else incomplete = true
  }
  return { events, unseen, incomplete }
}

/** Whether a message delivered live (or held while history was read) counts as an event for this subscriber. */
export function isVisibleLive(message: StreamMessage, view: CategoryView, now: number): boolean {
  // Transient messages have no position a golongpoll client could resume from: they are not category events.
  return message.offset > 0 && message.timestamp > now - view.eventTtlMs
}
