import { MemorySessionStore, type SessionState, type SessionStore } from '@rt/core'
import { assertUnavailable, unavailableBroker, unavailableStore, type AnsweredRequest } from '@rt/core/testing'
import t from 'tap'
import { FAST, connectTo, payloads, poll, post, pubsub, serve, subscribe, until, type LpResponse } from './helpers.js'

const answered = (res: LpResponse): AnsweredRequest => ({ status: res.status, retryAfter: res.headers.get('retry-after'), body: res.text })

/** A memory store that can be made unreachable, as Redis stopping and starting again. */
class FlakyStore implements SessionStore {
  down = false
  private readonly inner = new MemorySessionStore()
  private readonly failing = unavailableStore()
  private pick(): SessionStore {
    return this.down ? this.failing : this.inner
  }
  get(sid: string) { return this.pick().get(sid) }
  create(state: SessionState, ttlMs: number) { return this.pick().create(state, ttlMs) }
  claim(sid: string, ttlMs: number, ifLease?: number) { return this.pick().claim(sid, ttlMs, ifLease) }
  save(state: SessionState, ttlMs: number) { return this.pick().save(state, ttlMs) }
  delete(sid: string) { return this.pick().delete(sid) }
  close() { return this.inner.close() }
}

t.test('an unreachable session store: connect and poll answer 503, never 500', async (t) => {
  const { url } = await serve(t, FAST, { sessionStore: unavailableStore() })
  assertUnavailable(t, answered(await post(url, subscribe(pubsub('room')))), 'connect')
  assertUnavailable(t, answered(await poll(url, 'some-session', subscribe(pubsub('room')))), 'poll')
})

t.test('an unreachable broker: a poll answers 503, never 500', async (t) => {
  const { url } = await serve(t, FAST, { broker: unavailableBroker() })
  const { id } = await connectTo(url)
  assertUnavailable(t, answered(await poll(url, id, subscribe(pubsub('room')))), 'poll')
})

t.test('the session is intact when the store comes back within keepaliveTimeout', async (t) => {
  const store = new FlakyStore()
  const { app, url } = await serve(t, { ...FAST, pollInterval: 30 }, { sessionStore: store })
  const { id } = await connectTo(url, ['room'])
  store.down = true
  for (let i = 0; i < 3; i++) assertUnavailable(t, answered(await poll(url, id, subscribe(pubsub('other')))), `poll ${i} during the outage`)
  store.down = false
  const next = poll(url, id, subscribe(pubsub('other')))
  await until(() => app.rt.hub.listeners('room') === 1, 'the poll to be held')
  await app.rt.publish('room', { n: 1 })
  const back = await next
  t.equal(back.status, 200)
  t.same(back.lines.filter((line) => line.type === 'confirm_subscription').map((line) => line.identifier), [pubsub('other')], 'the retried command ran')
  t.same(payloads(back.lines), [{ n: 1 }], 'and the session kept its subscriptions')
  t.equal(app.rt.hub.streamCount, 0, 'nothing of the failed requests is left joined')
})
