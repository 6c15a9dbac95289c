import { MemorySessionStore, type SessionState, type SessionStore } from '@rt/core'
import { assertUnavailable, unavailableBroker, unavailableStore, type AnsweredRequest } from '@rt/core/testing'
import t from 'tap'
import { rtCore } from '@rt/core'
import { testFastify } from '@rt/core/testing'
import { rtLongPoll } from '../src/index.js'
import { FAST, connectTo, payloads, poll, post, pubsub, serve, subscribe, types, until, type LpResponse } from './helpers.js'

const answered = (res: LpResponse): AnsweredRequest => ({ status: res.status, retryAfter: res.headers.get('retry-after'), body: res.text })

/** A memory store that can be made unreachable, as Redis stopping and starting again. */
class FlakyStore implements SessionStore {
  down = false
  /** Only writes fail (reads and claims go on), as a Redis that refuses writes. */
  savesDown = false
  private readonly inner = new MemorySessionStore()
  private readonly failing = unavailableStore()
  private pick(): SessionStore {
    return this.down ? this.failing : this.inner
  }
  get(sid: string) { return this.pick().get(sid) }
  create(state: SessionState, ttlMs: number) { return this.savesDown ? this.failing.create(state, ttlMs) : this.pick().create(state, ttlMs) }
  claim(sid: string, ttlMs: number, ifLease?: number) { return this.pick().claim(sid, ttlMs, ifLease) }
  save(state: SessionState, ttlMs: number) { return this.savesDown ? this.failing.save(state, ttlMs) : this.pick().save(state, ttlMs) }
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

t.test('a connect whose commands cannot be saved answers 503 and leaves nothing joined; the client connects again once the store is back', async (t) => {
  const store = new FlakyStore()
  const { app, url } = await serve(t, { ...FAST, pollInterval: 30 }, { sessionStore: store })
  store.savesDown = true
  assertUnavailable(t, answered(await post(url, subscribe(pubsub('room')))), 'connect')
  t.equal(app.rt.hub.streamCount, 0, 'nothing of the failed connect is left joined')
  store.savesDown = false
  const { id, response } = await connectTo(url, ['room'])
  t.same(types(response.lines), ['welcome', 'confirm_subscription'])
  const next = poll(url, id)
  await until(() => app.rt.hub.listeners('room') === 1, 'the poll to be held')
  await app.rt.publish('room', { n: 1 })
  t.same(payloads((await next).lines), [{ n: 1 }])
})

t.test('a save that fails after the answer was written is logged; the next poll serves again what was not confirmed', async (t) => {
  const store = new FlakyStore()
  const logs: Array<{ msg?: string; err?: { message?: string } }> = []
  const app = testFastify({
    forceCloseConnections: true,
    logger: { level: 'error', stream: { write: (line: string) => void logs.push(JSON.parse(line) as { msg?: string }) } }
  })
  await app.register(rtCore, { publicStreams: true, sessionStore: store })
  await app.register(rtLongPoll, { ...FAST, pollInterval: 30 })
  const url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/lp`
  t.teardown(() => app.close())
  const { id } = await connectTo(url, ['room'])
  const held = poll(url, id)
  await until(() => app.rt.hub.listeners('room') === 1, 'the poll to be held')
  // The poll saved its checkpoint when it was held: only the save after its answer fails.
  store.savesDown = true
  await app.rt.publish('room', { n: 1 })
  const answered = await held
  t.equal(answered.status, 200)
  t.same(payloads(answered.lines), [{ n: 1 }], 'the client got its answer')
  await until(() => logs.some((line) => line.msg === '@rt/long-poll: saving the session failed'), 'the failed save to be logged')
  t.match(logs.find((line) => line.msg === '@rt/long-poll: saving the session failed'), { err: { message: /session save/ } })
  store.savesDown = false
  const next = await poll(url, id)
  t.equal(next.status, 200)
  t.same(payloads(next.lines), [{ n: 1 }], 'the message whose confirmation was lost is served again, not lost')
  await app.rt.publish('room', { n: 2 })
  t.same(payloads((await poll(url, id)).lines), [{ n: 2 }], 'and the session goes on')
})
