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

class Feed {
  readonly members = new Set<FeedMember>()
  unsubscribe: (() => void) | undefined

  constructor(private readonly encoder: EventEncoder) {}

  readonly onMessage = (message: StreamMessage): void => {
    const answer = new SharedAnswer(this.encoder, message)
    // A member answered here leaves the set while it is iterated: a Set skips deleted entries, which is what we want.
    for (const member of this.members) member.offer(message, answer)
  }
}

/** The feeds of one plugin registration, by category. */
export class CategoryFeeds {
  private readonly feeds = new Map<string, Feed>()

  constructor(private readonly broker: Broker, private readonly encoder: EventEncoder) {}

  /**
   * Adds a member to its category's feed, subscribing the feed to the broker
   * when it is the first. Returns the function that removes it (and
   * unsubscribes the feed when it was the last).
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
    }
    feed.members.add(member)
    const joined = feed
    return () => {
      if (!joined.members.delete(member) || joined.members.size > 0) return
      if (this.feeds.get(category) === joined) this.feeds.delete(category)
      joined.unsubscribe?.()
    }
  }

  /** Categories with a live subscription (for tests and diagnostics). */
  get size(): number {
    return this.feeds.size
  }
}
