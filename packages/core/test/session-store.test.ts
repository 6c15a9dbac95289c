import t from 'tap'
import { MemorySessionStore, type KeptMessage, type SessionStore } from '../src/session-store.js'
import { sessionStoreContract } from '../src/testing/session-store-contract.js'

let clock = 0
sessionStoreContract(t, {
  create: async () => new MemorySessionStore({ now: () => clock }),
  elapse: async (ms) => {
    clock += ms
  }
})

/** A store that keeps no transient messages (`keep` and `retire` are optional): the memory store without them. */
function withoutKept(store: MemorySessionStore): SessionStore {
  return {
    get: (sid) => store.get(sid),
    create: (state, ttlMs) => store.create(state, ttlMs),
    claim: (sid, ttlMs, ifLease) => store.claim(sid, ttlMs, ifLease),
    save: (state, ttlMs) => store.save(state, ttlMs),
    delete: (sid) => store.delete(sid),
    close: () => store.close()
  }
}

t.test('the contract holds for a store that keeps no transient messages', async (t) => {
  let clock = 0
  sessionStoreContract(t, {
    create: async () => withoutKept(new MemorySessionStore({ now: () => clock })),
    elapse: async (ms) => {
      clock += ms
    }
  })
})

t.test('retired ids are remembered up to twice the limit: older ones may be kept again', async (t) => {
  const store = new MemorySessionStore()
  t.teardown(() => store.close())
  await store.create({ sid: 'r', identity: {}, subscriptions: {}, positions: {}, outbox: [], transport: {}, lease: 0, createdAt: 0 }, 10_000)
  const kept = (id: string): KeptMessage => ({ id, after: { offset: 0, epoch: 'e' }, message: { stream: 'a', offset: 0, epoch: 'e', timestamp: 1, data: id, meta: { transient: true, transient_id: id } } })
  await store.retire('r', ['m1', 'm2', 'm3'], 2)
  await store.retire('r', ['m4', 'm5'], 2)
  await store.keep('r', ['m1', 'm2', 'm3', 'm4', 'm5'].map(kept), 10)
  t.same((await store.get('r'))?.kept?.map((message) => message.id), ['m1'], 'the last four retired ids are still refused; the oldest was forgotten')
})

t.test('the sweep drops expired sessions', async (t) => {
  let now = 0
  const store = new MemorySessionStore({ now: () => now, sweepInterval: 5 })
  t.teardown(() => store.close())
  await store.create({ sid: 'x', identity: {}, subscriptions: {}, positions: {}, outbox: [], transport: {}, lease: 0, createdAt: 0 }, 10)
  t.equal(store.size, 1)
  now = 20
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.equal(store.size, 0)
})

t.test('a state that is not plain JSON is stored as JSON would store it, as the Redis store does', async (t) => {
  const store = new MemorySessionStore()
  t.teardown(() => store.close())
  const when = new Date(0)
  const state = { sid: 'd', identity: { user: 'u', when }, subscriptions: {}, positions: {}, outbox: [], transport: { n: Number.NaN }, lease: 0, createdAt: 1 }
  await store.create(state, 10_000)
  t.same((await store.get('d'))?.identity, { user: 'u', when: when.toJSON() }, 'the Date is its JSON text')
  t.same((await store.get('d'))?.transport, { n: null }, 'NaN is null')
})
