import t from 'tap'
import { MemorySessionStore } from '../src/session-store.js'
import { sessionStoreContract } from '../src/testing/session-store-contract.js'

let clock = 0
sessionStoreContract(t, {
  create: async () => new MemorySessionStore({ now: () => clock }),
  elapse: async (ms) => {
    clock += ms
  }
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
