import { MemorySessionStore, type SessionState } from '@rt/core'
import t from 'tap'
import { FAST, poll, post, pubsub, serve, subscribe, timers, until } from './helpers.js'

/** A memory store that remembers the sids it created: the client that left never learned its own. */
class RecordingStore extends MemorySessionStore {
  readonly created: string[] = []
  override create(state: SessionState, ttlMs: number): Promise<void> {
    this.created.push(state.sid)
    return super.create(state, ttlMs)
  }
}

t.test('a client that leaves while its connect is being set up confirms nothing: what it carried is served again, no poll or timer is left', async (t) => {
  const store = new RecordingStore()
  let left!: () => void
  const closed = new Promise<void>((resolve) => { left = resolve })
  let entered!: () => void
  const authenticating = new Promise<void>((resolve) => { entered = resolve })
  const { app, url } = await serve(t, { ...FAST, pollInterval: 30 }, {
    sessionStore: store,
    // Holds the connect in setup until the server has seen the client go.
    authenticate: async () => {
      entered()
      await closed
      return {}
    }
  })
  // Registered before the route's own watch: by the time authenticate goes on, the connect knows it was abandoned.
  app.server.on('request', (_req, res: NodeJS.EventEmitter) => res.once('close', () => left()))
  const baseline = timers()
  const controller = new AbortController()
  const connecting = post(url, subscribe(pubsub('room')), {}, controller.signal)
  await authenticating
  controller.abort()
  await t.rejects(connecting, { name: 'AbortError' })
  await until(() => store.created.length === 1 && app.rt.hub.parked.size === 1, 'the abandoned connect to settle')
  t.equal(app.rt.hub.listeners('room'), 0, 'no poll is left listening')
  await until(() => timers() <= baseline + 1, 'no timer of the connect to be left')
  const sid = store.created[0]!
  const stored = await store.get(sid)
  t.ok(stored !== undefined, 'the session is kept for its keepalive')
  // The answer was never written, so the next poll of that session serves its confirmation again (the welcome
  // belongs to the connect answer alone).
  const next = await poll(url, sid)
  t.equal(next.status, 200)
  t.same(next.lines.map((line) => line.type), ['confirm_subscription'], 'nothing of the lost answer was confirmed')
})
