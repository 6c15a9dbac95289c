import t from 'tap'
import { createConsumer, type Consumer, type ConsumerOptions } from '../src/index.js'
import { identifierOf } from '../src/identifier.js'
import { startServer, until } from './server.js'

/** Stands in for a browser's `window` and `document` events (Node has neither). */
function fakeBrowser(t: { teardown(fn: () => unknown): void }): { window: EventTarget; document: EventTarget & { visibilityState: string } } {
  const window = new EventTarget()
  const document = Object.assign(new EventTarget(), { visibilityState: 'visible' })
  const scope = globalThis as unknown as Record<string, unknown>
  scope.addEventListener = window.addEventListener.bind(window)
  scope.removeEventListener = window.removeEventListener.bind(window)
  scope.document = document
  t.teardown(() => {
    delete scope.addEventListener
    delete scope.removeEventListener
    delete scope.document
  })
  return { window, document }
}

function consumer(t: { teardown(fn: () => unknown): void }, options: ConsumerOptions): Consumer {
  const created = createConsumer({ sseWelcomeTimeout: 1000, ...options })
  t.teardown(() => created.close())
  return created
}

// Backoffs far longer than the tests' waits: only the page and network events can bring a consumer back in time.
const slow = { min: 120_000, max: 120_000 }

t.test('offline drops the connection; online reconnects at once, from the positions', async (t) => {
  const { window } = fakeBrowser(t)
  const { app, url } = await startServer(t)
  const rt = consumer(t, { url, backoff: slow })
  const got: unknown[] = []
  rt.subscribe({ stream: 'net' }, { received: (message) => got.push(message) })
  await until(() => app.rt.hub.listeners('net') === 1 && rt.transport === 'sse', 'subscribed')
  window.dispatchEvent(new Event('online'))
  t.equal(rt.transport, 'sse', 'online while connected changes nothing')
  window.dispatchEvent(new Event('offline'))
  t.equal(rt.transport, undefined)
  window.dispatchEvent(new Event('offline'))
  await until(() => app.rt.hub.listeners('net') === 0, 'the server sees the stream go')
  await app.rt.publish('net', 1)
  window.dispatchEvent(new Event('online'))
  await until(() => got.length === 1, 'what was missed, without waiting for the backoff')
  t.equal(rt.transport, 'sse')
  rt.close()
  window.dispatchEvent(new Event('online'))
  t.equal(rt.transport, undefined, 'a closed consumer stops listening')
})

t.test('pauseWhenHidden: a page hidden that long disconnects, and resumes from its positions when shown', async (t) => {
  const { document } = fakeBrowser(t)
  const { app, url } = await startServer(t)
  const rt = consumer(t, { url, backoff: slow, pauseWhenHidden: 50 })
  const got: unknown[] = []
  rt.subscribe({ stream: 'page' }, { received: (message) => got.push(message) })
  await until(() => app.rt.hub.listeners('page') === 1 && rt.transport === 'sse', 'subscribed')
  const show = (state: string): void => {
    document.visibilityState = state
    document.dispatchEvent(new Event('visibilitychange'))
  }
  show('hidden')
  show('visible')
  t.equal(rt.transport, 'sse', 'shown again before the delay: nothing happens')
  show('hidden')
  await until(() => app.rt.hub.listeners('page') === 0, 'paused')
  await app.rt.publish('page', 1)
  rt.subscribe({ stream: 'later' }, { received: (message) => got.push(message) })
  t.equal(rt.transport, undefined, 'a subscription while paused waits')
  show('visible')
  await until(() => got.length === 1 && app.rt.hub.listeners('later') === 1, 'resumed')
  await app.rt.publish('later', 2)
  await until(() => got.length === 2, 'the new subscription too')
  t.same(got, [1, 2])
})

t.test('subscribe from known positions; rewind moves them back; reconnect asks from there', async (t) => {
  const { app, url } = await startServer(t)
  const first = await app.rt.publish('kept', 1)
  for (let n = 2; n <= 4; n++) await app.rt.publish('kept', n)
  const rt = consumer(t, { url, backoff: { min: 20, max: 100 } })
  const got: unknown[] = []
  const target = { stream: 'kept' }
  const identifier = identifierOf(target)
  rt.subscribe(target, { received: (message) => got.push(message) }, { since: Date.now() - 60_000, streams: { kept: { offset: 2, epoch: first.epoch } } })
  await until(() => got.length === 2, 'history after offset 2')
  t.same(got, [3, 4])
  t.equal(rt.rewind(identifier, { streams: { kept: { offset: 4, epoch: first.epoch } } }), false, 'not behind: nothing moves')
  t.equal(rt.rewind(identifier, { streams: { kept: { offset: 1, epoch: 'another' } } }), false, 'another epoch: nothing moves')
  t.equal(rt.rewind('{"channel":"Nope"}', { since: 0 }), false, 'unknown subscription')
  t.equal(rt.rewind(identifier, { since: Date.now() - 120_000, streams: { kept: { offset: 1, epoch: first.epoch } } }), true)
  rt.reconnect()
  await until(() => got.length === 5, 'history after offset 1')
  t.same(got, [3, 4, 2, 3, 4])
  rt.subscribe({ stream: 'fresh' }, {}, { streams: { fresh: { offset: 0, epoch: 'x' } } })
  await until(() => app.rt.hub.listeners('fresh') === 1, 'a seeded subscription on an open connection')
})
