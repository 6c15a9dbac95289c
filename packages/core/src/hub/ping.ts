import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyRequest } from 'fastify'
import type { PingPrecision } from './protocol.js'

/** AnyCable's per-connection ping options: `?pi=` (interval, whole seconds) and `?ptp=` (`s`, `ms` or `ns`). */
const PingQuerySchema = Type.Object({
  pi: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$' })),
  ptp: Type.Optional(Type.Union([Type.Literal('s'), Type.Literal('ms'), Type.Literal('ns')]))
})
const checkPingQuery = TypeCompiler.Compile(PingQuerySchema)

export interface PingOptions {
  /** Milliseconds between pings (`undefined`: the transport's default). */
  intervalMs: number | undefined
  precision: PingPrecision
}

export type ParsedPingOptions = { ok: true; ping: PingOptions } | { ok: false; error: string }

/** Reads `pi` and `ptp` from a request's query string; a bad value is an error to answer 400 with. */
export function pingOptions(request: FastifyRequest): ParsedPingOptions {
  const url = request.url
  const start = url.indexOf('?')
  const params = new URLSearchParams(start < 0 ? '' : url.slice(start + 1))
  const query: Record<string, string> = {}
  for (const name of ['pi', 'ptp']) {
    const values = params.getAll(name)
    if (values.length > 1) return { ok: false, error: `invalid query parameter ${name}: given more than once` }
    if (values.length === 1) query[name] = values[0]!
  }
  if (!checkPingQuery.Check(query)) {
    const name = checkPingQuery.Errors(query).First()!.path.slice(1)
    return { ok: false, error: name === 'pi' ? 'invalid query parameter pi: a whole number of seconds, 1 to 99999' : 'invalid query parameter ptp: s, ms or ns' }
  }
  return { ok: true, ping: { intervalMs: query.pi === undefined ? undefined : Number(query.pi) * 1000, precision: (query.ptp ?? 's') as PingPrecision } }
}

/** What a {@link PingWheel} pings: a connection that writes its own ping frame. */
export interface Pingable {
  ping(): void
}

/** Most slots of one wheel: the spread of first pings is one slot (interval / 32) at worst. */
const MAX_SLOTS = 32
/** Shortest tick (ms): shorter intervals get fewer slots rather than a busier timer. */
const MIN_TICK_MS = 10

/**
 * One timer for every connection that pings at one interval, instead of one
 * `setInterval` per connection (10k connections: 10k timers, each a heap
 * object the timer list keeps sorted). The interval is cut into slots; each
 * connection sits in one slot, pinged every time the wheel passes it, so it
 * pings exactly once per interval. Its first ping comes at a random time in
 * [0.5, 1.5) × the interval (to the slot), so that connections opened together
 * do not ping together. The timer is unref'd and stops when the wheel empties.
 */
export class PingWheel {
  readonly slotCount: number
  readonly tickMs: number
  /**
   * Each slot's targets, with the turns of the wheel each still waits before
   * its first ping (a first ping due later than one interval). A target is its
   * own key: no entry object and no remover closure per connection (~150 B each).
   */
  private readonly slots: Array<Map<Pingable, number>>
  private position = 0
  private size = 0
  private timer: NodeJS.Timeout | undefined

  constructor(
    readonly intervalMs: number,
    /** Called when the last target left (the registry forgets the wheel). */
    private readonly onEmpty?: () => void
  ) {
    this.slotCount = Math.max(1, Math.min(MAX_SLOTS, Math.floor(intervalMs / MIN_TICK_MS)))
    this.tickMs = intervalMs / this.slotCount
    this.slots = Array.from({ length: this.slotCount }, () => new Map<Pingable, number>())
  }

  /** Number of targets on the wheel. */
  get targets(): number {
    return this.size
  }

  /** Puts a target on the wheel (a target on it already stays where it is). */
  add(target: Pingable): void {
    if (this.slots.some((slot) => slot.has(target))) return
    const slots = this.slotCount
    // Ticks until the first ping: uniform in [slots / 2, 3 × slots / 2), i.e. [0.5, 1.5) × the interval.
    const delay = Math.max(1, Math.floor(slots / 2 + Math.random() * slots))
    this.slots[(this.position + delay - 1) % slots]!.set(target, Math.floor((delay - 1) / slots))
    this.size++
    this.timer ??= setInterval(() => this.tick(), this.tickMs).unref()
  }

  /** Takes a target off the wheel (idempotent); looks through the slots (at most 32) rather than keep where each target sits. */
  remove(target: Pingable): void {
    for (const slot of this.slots) {
      if (!slot.delete(target)) continue
      if (--this.size === 0) this.stop()
      return
    }
  }

  /** Pings the targets of the current slot and moves on. */
  private tick(): void {
    const slot = this.slots[this.position]!
    this.position = (this.position + 1) % this.slotCount
    for (const [target, wait] of slot) {
      // Changing the value of a key the loop is on neither moves it nor visits it again.
      if (wait > 0) slot.set(target, wait - 1)
      else target.ping()
    }
  }

  private stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.onEmpty?.()
  }
}

const wheels = new Map<number, PingWheel>()

/**
 * The process's wheel for one ping interval (ms), shared by every connection of
 * every app pinging at it. An emptied wheel is forgotten, so intervals chosen by
 * clients (`?pi=`) leave nothing behind.
 */
export function pingWheel(intervalMs: number): PingWheel {
  let wheel = wheels.get(intervalMs)
  if (wheel === undefined) {
    const created = new PingWheel(intervalMs, () => {
      if (wheels.get(intervalMs) === created) wheels.delete(intervalMs)
    })
    wheels.set(intervalMs, (wheel = created))
  }
  return wheel
}

/** Number of ping wheels alive in this process (each has targets, hence one running timer). */
export function pingWheelCount(): number {
  return wheels.size
}
