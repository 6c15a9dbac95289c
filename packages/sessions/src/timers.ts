/** A timer started through {@link Timers}. */
export interface Timer {
  readonly handle: ReturnType<typeof setTimeout>
}

/**
 * Every timer of the plugin goes through here, so that the number of pending
 * timers is known (tests check that none leak) and all can be cleared at once.
 */
export class Timers {
  private readonly pending = new Set<Timer>()

  /** Number of timers started and neither fired nor cleared. */
  get count(): number {
    return this.pending.size
  }

  /** Runs `fn` once after `ms`; the timer does not keep the process alive. */
  start(fn: () => void, ms: number): Timer {
    const timer: Timer = {
      handle: setTimeout(() => {
        this.pending.delete(timer)
        fn()
      }, ms)
    }
    timer.handle.unref()
    this.pending.add(timer)
    return timer
  }

  /** Clears a timer; `undefined` or an already finished timer is a no-op. */
  clear(timer: Timer | undefined): undefined {
    if (timer !== undefined && this.pending.delete(timer)) clearTimeout(timer.handle)
    return undefined
  }
}
