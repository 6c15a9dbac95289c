import type { Test } from 'tap'
import type { KeptMessage, SessionState, SessionStore } from '../session-store.js'

export interface SessionStoreContractSetup {
  /** A fresh store whose sessions do not collide with other runs (use a unique prefix). */
  create(): Promise<SessionStore>
  /** Lets `ms` of the store's time pass (real waiting is fine for small values). */
  elapse(ms: number): Promise<void>
}

function kept(id: string, data: unknown, after = 0): KeptMessage {
  return { id, after: { offset: after, epoch: 'e1' }, message: { stream: 'a', offset: 0, epoch: 'e1', timestamp: 7, data, meta: { transient: true, transient_id: id } } }
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

  t.test('kept transient messages: appended whatever the lease, deduplicated, capped, retired, never saved over', async (t) => {
    const store = await make(t)
    if (store.keep === undefined || store.retire === undefined) return t.pass('this store keeps no transient messages')
    t.equal(await store.keep('missing', [kept('x', 1)], 10), undefined, 'no session, nothing kept')
    await store.create(state('k1'), 10_000)
    t.equal(await store.keep('k1', [kept('m1', { text: 'a\nb', n: 0.1 + 0.2, empty: {}, list: [] })], 10), 0, 'answers the lease of the last save')
    const claimed = await store.claim('k1', 10_000)
    t.same(claimed?.kept, [kept('m1', { text: 'a\nb', n: 0.1 + 0.2, empty: {}, list: [] })], 'read with the claim, data as it was')
    t.equal(await store.keep('k1', [kept('m1', 'again'), kept('m2', 2, 3)], 10), 0, 'kept by a process that does not hold the session')
    t.equal(await store.save({ ...claimed!, kept: [] }, 10_000), true)
    t.same((await store.get('k1'))?.kept?.map((message) => message.id), ['m1', 'm2'], 'a save neither writes nor drops them; an id is kept once')
    t.equal(await store.keep('k1', [kept('m3', 3), kept('m4', 4), kept('m5', 5)], 3), 1, 'the lease of the newer save')
    t.same((await store.get('k1'))?.kept?.map((message) => message.id), ['m3', 'm4', 'm5'], 'past the limit the oldest go')
    await store.retire('k1', ['m3', 'm4'], 3)
    t.same((await store.get('k1'))?.kept?.map((message) => message.id), ['m5'])
    await store.keep('k1', [kept('m4', 4), kept('m6', 6)], 3)
    t.same((await store.get('k1'))?.kept?.map((message) => message.id), ['m5', 'm6'], 'a retired id is not kept again')
    await store.retire('k1', ['m5', 'm6'], 3)
    t.equal((await store.get('k1'))?.kept, undefined, 'none left')
    await store.create(state('k1'), 10_000)
    t.equal((await store.get('k1'))?.kept, undefined, 'create starts without any')
    await store.create({ ...state('k1'), lease: 4, kept: [kept('m7', 7)] }, 10_000)
    t.match(await store.get('k1'), { lease: 0, kept: undefined }, 'nor with those of the state it is given, at lease 0')
    await store.retire('missing', ['m1'], 3)
  })

  t.test('kept transient messages expire with their session', async (t) => {
    const store = await make(t)
    if (store.keep === undefined) return t.pass('this store keeps no transient messages')
    await store.create(state('k2'), 150)
    await store.keep('k2', [kept('m1', 1)], 10)
    await setup.elapse(200)
    t.equal(await store.get('k2'), undefined)
    t.equal(await store.keep('k2', [kept('m2', 2)], 10), undefined)
  })
}
