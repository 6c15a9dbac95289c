import type { Test } from 'tap'
import { PresenceIdMismatchError, type PresenceLeave, type PresenceStore } from '../presence-store.js'

/** What the contract needs: two handles on one fresh presence space (two processes, or one store twice). */
export interface PresenceStoreContractSetup {
  create(): Promise<[PresenceStore, PresenceStore]>
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The behaviour every `PresenceStore` must have, with real time (deadlines of
 * tens of milliseconds). Run it from each implementation's tests.
 */
export function presenceStoreContract(t: Test, setup: PresenceStoreContractSetup): void {
  t.test('presence store: one record per id, info, remove reports the emptied record', async (t) => {
    const [store] = await setup.create()
    t.equal(await store.add('s', 'sid1', 'u1', { name: 'One' }, 60_000), true)
    t.equal(await store.add('s', 'sid2', 'u1', { name: 'One' }, 60_000), false, 'a second session of the id')
    t.equal(await store.add('s', 'sid1', 'u1', { name: 'Uno' }, 60_000), false, 'joining again updates the info')
    t.equal(await store.add('s', 'sid3', 'u2', undefined, 60_000), true)
    await t.rejects(store.add('s', 'sid1', 'u9', {}, 60_000), PresenceIdMismatchError)
    const info = await store.info('s', { records: true })
    t.equal(info.total, 2)
    t.same([...info.records].sort((a, b) => a.id.localeCompare(b.id)), [{ id: 'u1', info: { name: 'Uno' } }, { id: 'u2' }])
    t.same(await store.info('s', { records: false }), { total: 2, records: [] })
    t.same(await store.info('other', { records: true }), { total: 0, records: [] })
    t.equal(await store.remove('s', 'sid1'), undefined, 'u1 still has sid2')
    t.equal(await store.remove('s', 'sid2'), 'u1')
    t.equal(await store.remove('s', 'sid2'), undefined, 'removing twice')
    t.equal(await store.remove('s', 'nobody'), undefined)
    await store.touch('s', 'nobody', 1000)
    t.same((await store.info('s', { records: true })).records, [{ id: 'u2' }])
  })

  t.test('presence store: deadlines, touch, and each expiry reported once across handles', async (t) => {
    const [one, two] = await setup.create()
    await one.add('room', 'a', 'alice', { n: 1 }, 40)
    await one.add('room', 'b', 'bob', undefined, 40)
    await one.add('room', 'b2', 'bob', undefined, 60_000)
    await one.add('hall', 'a', 'alice', undefined, 60_000)
    await one.touch('hall', 'a', 40)
    await two.touch('room', 'b2', 60_000)
    const leaves: PresenceLeave[] = []
    for (let i = 0; i < 400 && leaves.length < 2; i++) {
      await sleep(10)
      const [x, y] = await Promise.all([one.sweep(), two.sweep()])
      leaves.push(...x, ...y)
    }
    t.same(leaves.sort((a, b) => a.stream.localeCompare(b.stream)), [{ stream: 'hall', id: 'alice' }, { stream: 'room', id: 'alice' }],
      'each emptied record once, bob kept by b2')
    t.same(await one.sweep(), [])
    t.same((await two.info('room', { records: true })).records, [{ id: 'bob' }])
  })
}
