/**
 * One broker subscription per category, shared by every request held on it,
 * and one answer body per event for all of them.
 *
 * golongpoll's loop keeps one request parked per client, so a category with
 * ten clients has ten held polls, and a publish answers all ten with the same
 * `{"events":[<that event>]}`. Subscribing each of them to the broker and
 * encoding each answer on its own cost a listener add/remove and a body (text
 * and Buffer) per poll; here the feed subscribes while it has members and
 * builds each body at most once per event (two variants: with and without
 * `"incomplete":true`).
 */
import type { Broker, StreamMessage } from '@rt/core'
import type { EventEncoder } from './encoder.js'
import { DEFAULT_SUBSCRIPTION_LINGER_MS } from './options.js'

/** What a held request gets from its category's feed. */
export interface FeedMember {
  /** Called for every live message of the category, in offset order, while the member is joined. */
  offer(message: StreamMessage, answer: SharedAnswer): void
}

/** The answer bodies of one live event, encoded on first use and shared by every poll answered with it alone. */
export class SharedAnswer {
  private complete: Buffer | undefined
  private incomplete: Buffer | undefined

  constructor(private readonly encoder: EventEncoder, readonly message: StreamMessage) {}

  /** `{"events":[<message>]}` (with `"incomplete":true` when asked), as bytes. */
  body(incomplete: boolean): Buffer {
    if (incomplete) return this.incomplete ??= this.encoder.eventsBytes([this.message], true)
    return this.complete ??= this.encoder.eventsBytes([this.message], false)
  }
}

/** At most this many feeds without a member stay subscribed; past it, a feed that empties unsubscribes at once. */
export const MAX_LINGERING_FEEDS = 1024

class Feed {
  readonly members = new Set<FeedMember>()
  unsubscribe: (() => void) | undefined

  constructor(private readonly encoder: EventEncoder) {}

  readonly onMessage = (message: StreamMessage): void => {
    // A lingering feed (no member) has nobody to answer.
    if (this.members.size === 0) return
    const answer = new SharedAnswer(this.encoder, message)
    // A member answered here leaves the set while it is iterated: a Set skips deleted entries, which is what we want.
    for (const member of this.members) member.offer(message, answer)
  }
}

/** Options of {@link CategoryFeeds}: the defaults suit every app; tests shorten them. */
export interface CategoryFeedsOptions {
  /** Milliseconds an empty feed stays subscribed at least (0: unsubscribe with the last member). Default {@link DEFAULT_SUBSCRIPTION_LINGER_MS}. */
  lingerMs?: number
  /** Default {@link MAX_LINGERING_FEEDS}. */
  maxLingering?: number
  /** The clock of the linger (tests). Default `Date.now`. */
  now?: () => number
}

/**
 * The feeds of one plugin registration, by category.
 *
 * A feed whose last member leaves stays subscribed for `lingerMs`: golongpoll's
 * loop polls again right after each answer, and a category whose polls are
 * answered from history (clients behind the publisher) would otherwise
 * subscribe and unsubscribe once per request — with `@rt/redis` a SUBSCRIBE,
 * a position read and an UNSUBSCRIBE, and a publish that waits for the
 * SUBSCRIBE. The sweeper runs every `lingerMs`, so a feed lingers between one
 * and two times that. Bounded by `maxLingering`, as categories are named by clients.
 */
export class CategoryFeeds {
  private readonly feeds = new Map<string, Feed>()
  /** Subscribed feeds with no member, with when they emptied, oldest first (a Map keeps insertion order). */
  private readonly lingering = new Map<Feed, { category: string; since: number }>()
  private sweeper: NodeJS.Timeout | undefined
  private readonly lingerMs: number
  private readonly maxLingering: number
  private readonly now: () => number

  constructor(private readonly broker: Broker, private readonly encoder: EventEncoder, options: CategoryFeedsOptions = {}) {
    this.lingerMs = options.lingerMs ?? DEFAULT_SUBSCRIPTION_LINGER_MS
    this.maxLingering = options.maxLingering ?? MAX_LINGERING_FEEDS
    this.now = options.now ?? Date.now
  }

  /**
   * Adds a member to its category's feed, subscribing the feed to the broker
   * when the category has none. Returns the function that removes it (the feed
   * lingers, then unsubscribes, when it was the last).
   */
  join(category: string, member: FeedMember): () => void {
    let feed = this.feeds.get(category)
    if (feed === undefined) {
      feed = new Feed(this.encoder)
      this.feeds.set(category, feed)
      try {
        feed.unsubscribe = this.broker.subscribe(category, feed.onMessage)
      } catch (error) {
        this.feeds.delete(category)
        throw error
      }
    } else if (feed.members.size === 0) {
      this.lingering.delete(feed)
    }
    feed.members.add(member)
    const joined = feed
    return () => {
      if (!joined.members.delete(member) || joined.members.size > 0) return
      if (this.lingerMs === 0 || this.lingering.size >= this.maxLingering) return this.drop(category, joined)
      this.lingering.set(joined, { category, since: this.now() })
      // Armed only while a feed lingers: an idle server keeps no timer.
      this.sweeper ??= setInterval(() => this.sweep(), this.lingerMs).unref()
    }
  }

  /** Unsubscribes the feeds that have had no member for `lingerMs` (run by the sweeper, and by tests). */
  sweep(): void {
    const now = this.now()
    for (const [feed, { category, since }] of this.lingering) {
      if (now - since < this.lingerMs) break
      this.drop(category, feed)
    }
    if (this.lingering.size === 0) this.stopSweeper()
  }

  /** Ends every feed's subscription (the plugin's `onClose`, after held requests were answered). */
  close(): void {
    this.stopSweeper()
    this.lingering.clear()
    for (const feed of this.feeds.values()) feed.unsubscribe?.()
    this.feeds.clear()
  }

  /** Categories with a live subscription, lingering ones included (for tests and diagnostics). */
  get size(): number {
    return this.feeds.size
  }

  /** Feeds subscribed without a member (for tests and diagnostics). */
  get lingeringCount(): number {
    return this.lingering.size
  }

  /** Whether the sweeper's timer is armed (for tests and diagnostics). */
  get sweeping(): boolean {
    return this.sweeper !== undefined
  }

  private drop(category: string, feed: Feed): void {
    this.lingering.delete(feed)
    if (this.feeds.get(category) === feed) this.feeds.delete(category)
    feed.unsubscribe?.()
  }

  private stopSweeper(): void {
    clearInterval(this.sweeper)
    this.sweeper = undefined
  }
}
