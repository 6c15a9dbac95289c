import type { Test } from 'tap'
import type { SessionState, SessionStore } from '../session-store.js'

export interface SessionStoreContractSetup {
  /** A fresh store whose sessions do not collide with other runs (use a unique prefix). */
  create(): Promise<SessionStore>
  /** Lets `ms` of the store's time pass (real waiting is fine for small values). */
  elapse(ms: number): Promise<void>
}

function state(sid: string): SessionState {
  return {
    sid,
    identity: { user: 'u1' },
    subscriptions: { '{"channel":"C"}': { channel: 'C', params: {}, streams: ['a', 'b/c'] } },
    positions: { a: { offset: 3, epoch: 'e1' } },
    outbox: [{ type: 'confirm_subscription', identifier: '{"channel":"C"}' }],
    transport: { polledAt: 5 },
    lease: 0,
    createdAt: 1
  }
}

/** The behaviour every `SessionStore` must have. */
export function sessionStoreContract(t: Test, setup: SessionStoreContractSetup): void {
  const make = async (t: Test): Promise<SessionStore> => {
    const store = await setup.create()
    t.teardown(() => store.close())
    return store
  }

  t.test('create, get, delete', async (t) => {
    const store = await make(t)
    t.equal(await store.get('s1'), undefined)
    await store.create(state('s1'), 10_000)
    t.same(await store.get('s1'), state('s1'))
    await store.delete('s1')
    t.equal(await store.get('s1'), undefined)
    await store.delete('s1')
  })

  t.test('claim bumps the lease; a save with an old lease is refused', async (t) => {
    const store = await make(t)
    await store.create(state('s2'), 10_000)
    const first = await store.claim('s2', 10_000)
    t.equal(first?.lease, 1)
    const second = await store.claim('s2', 10_000)
    t.equal(second?.lease, 2)
    t.equal(await store.save({ ...first!, positions: { a: { offset: 9, epoch: 'e1' } } }, 10_000), false, 'the older request loses')
    t.equal(await store.save({ ...second!, positions: { a: { offset: 4, epoch: 'e1' } } }, 10_000), true)
    const stored = await store.get('s2')
    t.same(stored?.positions, { a: { offset: 4, epoch: 'e1' } })
    t.equal(stored?.lease, 2)
    t.equal(await store.claim('missing', 10_000), undefined)
    t.equal(await store.save(state('missing'), 10_000), false)
  })

  t.test('a claim at an expected lease is atomic: of concurrent claims from one state exactly one wins', async (t) => {
    const store = await make(t)
    await store.create(state('s5'), 10_000)
    const seen = await store.get('s5')
    const claims = await Promise.all(Array.from({ length: 8 }, () => store.claim('s5', 10_000, seen!.lease)))
    const won = claims.filter((claimed) => claimed !== undefined)
    t.equal(won.length, 1, 'one claim wins')
    t.equal(won[0]?.lease, seen!.lease + 1)
    t.equal(await store.claim('s5', 10_000, seen!.lease), undefined, 'the lease moved on')
    t.equal((await store.claim('s5', 10_000, seen!.lease + 1))?.lease, seen!.lease + 2, 'claims at the current lease')
    t.equal(await store.claim('missing', 10_000, 0), undefined)
    t.equal(await store.save(won[0]!, 10_000), false, 'the superseded claim cannot save')
    t.equal((await store.get('s5'))?.lease, seen!.lease + 2)
  })

  t.test('sessions expire after their TTL; claim and save refresh it', async (t) => {
    const store = await make(t)
    await store.create(state('s3'), 150)
    await store.create(state('s4'), 150)
    await setup.elapse(100)
    const claimed = await store.claim('s4', 150)
    await setup.elapse(100)
    t.equal(await store.get('s3'), undefined, 'expired')
    t.ok(await store.get('s4'), 'refreshed by claim')
    t.equal(await store.save(claimed!, 150), true)
    await setup.elapse(100)
    t.ok(await store.get('s4'), 'refreshed by save')
    await setup.elapse(200)
    t.equal(await store.get('s4'), undefined)
  })
}
