import t from 'tap'
import { PingWheel, pingWheel, pingWheelCount } from '../src/hub/ping.js'

/** Replaces setInterval/clearInterval with a recorder, so ticks are driven by hand. */
function fakeTimers(t: { teardown(fn: () => void): void }) {
  const real = { setInterval: globalThis.setInterval, clearInterval: globalThis.clearInterval, random: Math.random }
  const timers: Array<{ delay: number; callback: () => void; cleared: boolean }> = []
  globalThis.setInterval = ((callback: () => void, delay: number) => {
    const timer = { delay, callback, cleared: false, unref: () => timer }
    timers.push(timer)
    return timer
  }) as unknown as typeof setInterval
  globalThis.clearInterval = ((timer: { cleared: boolean } | undefined) => {
    if (timer !== undefined) timer.cleared = true
  }) as unknown as typeof clearInterval
  t.teardown(() => {
    Object.assign(globalThis, { setInterval: real.setInterval, clearInterval: real.clearInterval })
    Math.random = real.random
  })
  return { timers, live: () => timers.filter((timer) => !timer.cleared) }
}

t.test('one timer for every target of an interval, ticking once per slot', async (t) => {
  const { timers, live } = fakeTimers(t)
  const wheel = new PingWheel(3000)
  t.equal(wheel.slotCount, 32)
  t.equal(wheel.tickMs, 3000 / 32)
  const pings: string[] = []
  Math.random = () => 0.25
  const targets = Array.from({ length: 100 }, (_, i) => ({ ping: () => pings.push(`c${i}`) }))
  for (const target of targets) wheel.add(target)
  t.equal(timers.length, 1, '100 targets, one timer')
  t.equal(timers[0]!.delay, 3000 / 32)
  t.equal(wheel.targets, 100)
  wheel.add(targets[0]!)
  t.equal(wheel.targets, 100, 'a target added twice is on the wheel once')
  for (const target of targets) wheel.remove(target)
  t.equal(wheel.targets, 0)
  t.equal(live().length, 0, 'the timer stops when the wheel empties')
  wheel.remove(targets[0]!)
  t.equal(wheel.targets, 0, 'removing twice is harmless')
})

t.test('first ping at [0.5, 1.5) × the interval, then exactly once per interval', async (t) => {
  const { live } = fakeTimers(t)
  const wheel = new PingWheel(1000)
  const slots = wheel.slotCount
  t.equal(slots, 32)
  const firstAt = new Map<string, number>()
  const counts = new Map<string, number>()
  let ticks = 0
  const add = (name: string, random: number): void => {
    Math.random = () => random
    wheel.add({
      ping: () => {
        if (!firstAt.has(name)) firstAt.set(name, ticks)
        counts.set(name, (counts.get(name) ?? 0) + 1)
      }
    })
  }
  add('earliest', 0)
  add('middle', 0.5)
  add('latest', 0.999)
  const tick = live()[0]!.callback
  // Ten whole turns of the wheel.
  for (ticks = 1; ticks <= slots * 10; ticks++) tick()
  t.equal(firstAt.get('earliest'), slots / 2, 'random 0: half an interval')
  t.equal(firstAt.get('middle'), slots, 'random 0.5: one interval')
  t.equal(firstAt.get('latest'), slots + slots / 2 - 1, 'random → 1: just under 1.5 intervals')
  for (const [name, first] of firstAt) {
    t.equal(counts.get(name), Math.floor((slots * 10 - first) / slots) + 1, `${name}: one ping per interval after the first`)
  }
})

t.test('a target added mid-turn is still first pinged at least half an interval later', async (t) => {
  const { live } = fakeTimers(t)
  const wheel = new PingWheel(1000)
  let ticks = 0
  let first: number | undefined
  const kept = { ping: () => undefined }
  wheel.add(kept)
  const tick = live()[0]!.callback
  for (; ticks < 7; ticks++) tick()
  Math.random = () => 0
  wheel.add({ ping: () => { first ??= ticks } })
  for (; ticks < 100; ticks++) tick()
  t.equal(first, 7 + wheel.slotCount / 2 - 1, 'counted from when it was added (ticks are numbered from 0 here)')
  wheel.remove(kept)
})

t.test('short intervals get fewer slots, never a tick under 10 ms', async (t) => {
  t.equal(new PingWheel(10).slotCount, 1)
  t.equal(new PingWheel(50).slotCount, 5)
  t.equal(new PingWheel(50).tickMs, 10)
  t.equal(new PingWheel(600_000).slotCount, 32)
})

t.test('one wheel per interval per process; an emptied wheel is forgotten', async (t) => {
  fakeTimers(t)
  const before = pingWheelCount()
  const a = pingWheel(4321)
  t.equal(pingWheel(4321), a, 'the same interval, the same wheel')
  t.not(pingWheel(4322), a)
  const targetA = { ping: () => undefined }
  const targetB = { ping: () => undefined }
  a.add(targetA)
  pingWheel(4322).add(targetB)
  t.equal(pingWheelCount(), before + 2)
  a.remove(targetA)
  pingWheel(4322).remove(targetB)
  t.equal(pingWheelCount(), before, 'nothing left behind by intervals no connection uses any more')
  t.not(pingWheel(4321), a, 'a later connection gets a new wheel')
  const later = { ping: () => undefined }
  pingWheel(4321).add(later)
  pingWheel(4321).remove(later)
})
