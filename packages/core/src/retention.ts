/**
 * Per-stream retention: a broker keeps one default, and plugins with rules of
 * their own (golongpoll's 250 events forever for categories) add a policy for
 * the streams they select.
 */

/** How much history a stream keeps. */
export interface RetentionPolicy {
  /** Messages kept (0: none). */
  historyLimit: number
  /** Seconds a message is kept; `Infinity` keeps it until the limit pushes it out. */
  historyTtl: number
}

/** Selects the streams a retention policy applies to. */
export type StreamSelector = (stream: string) => boolean

/** Checks a policy; throws a `TypeError` prefixed with `prefix`. */
export function checkRetentionPolicy(policy: unknown, prefix: string): RetentionPolicy {
  const { historyLimit, historyTtl } = (typeof policy === 'object' && policy !== null ? policy : {}) as Partial<RetentionPolicy>
  if (typeof historyLimit !== 'number' || !Number.isInteger(historyLimit) || historyLimit < 0) {
    throw new TypeError(`${prefix}: historyLimit must be a non-negative integer`)
  }
  if (typeof historyTtl !== 'number' || !(historyTtl > 0)) throw new TypeError(`${prefix}: historyTtl must be a positive number of seconds (or Infinity)`)
  return { historyLimit, historyTtl }
}

/** A broker's retention: its default, and the policies added for selected streams (the latest added wins). */
export class RetentionRules {
  private rules: Array<{ applies: StreamSelector; policy: RetentionPolicy }> = []

  constructor(readonly fallback: RetentionPolicy) {}

  /** Adds a policy for the streams `applies` selects; returns the function that removes it. */
  add(applies: StreamSelector, policy: RetentionPolicy, prefix: string): () => void {
    if (typeof applies !== 'function') throw new TypeError(`${prefix}: setRetention needs a function selecting streams`)
    const rule = { applies, policy: checkRetentionPolicy(policy, prefix) }
    this.rules = [rule, ...this.rules]
    return () => {
      this.rules = this.rules.filter((entry) => entry !== rule)
    }
  }

  /** The policy of a stream. */
  for(stream: string): RetentionPolicy {
    for (const rule of this.rules) if (rule.applies(stream)) return rule.policy
    return this.fallback
  }
}
