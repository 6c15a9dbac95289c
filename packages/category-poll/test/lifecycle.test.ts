import { rtCore, type Broker } from '@rt/core'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import { categoryPoll } from '../src/index.js'
import { CountingBroker, eventsOf, start, fastify, timers, until, NO_LINGER } from './helpers.js'

t.test('beforeSubscribe: async, false → 403 with golongpoll headers, own replies kept, sees the request', async (t) => {
  const seen: string[] = []
  const s = await start(t, {
    beforeSubscribe: async (request, reply) => {
      const { category } = request.query as { category?: string }
      seen.push(category ?? '')
      if (category === 'private') return false
      if (category === 'redirect') {
        await reply.code(401).send({ error: 'log in first' })
        return true
      }
      return category === 'secret' ? false : undefined
    },
    prefix: '/category'
  })
  const refused = await s.get('category=private&timeout=1')
  t.equal(refused.status, 403)
  t.equal(refused.headers.get('cache-control'), 'no-cache, no-store, must-revalidate')
  t.equal(await refused.text(), '{"error": "Forbidden."}')
  const own = await s.get('category=redirect&timeout=1')
  t.equal(own.status, 401, 'a hook that replied keeps its answer even when it returns true')
  t.same(await own.json(), { error: 'log in first' })
  await s.publish('public', 'hello')
  t.same(eventsOf(await s.json('category=public&timeout=1&since_time=0')).map((e) => e.data), ['hello'])
  t.same(seen, ['private', 'redirect', 'public'])
  t.equal((await fetch(`${s.origin}/events?category=public&timeout=1`)).status, 404, 'routes live under the prefix')
})

t.test('failures: an unavailable broker is 503, a throwing hook 500 (or its own 4xx), as golongpoll JSON', async (t) => {
  const broker = new CountingBroker()
  const logs: string[] = []
  const app = fastify({ logger: { level: 'error', stream: { write: (line: string) => logs.push(line) } } })
  await app.register(rtCore, { broker })
  await app.register(categoryPoll, {
    enablePublish: true,
    publishKey: 'k',
    beforeSubscribe: (request) => {
      const { category } = request.query as { category: string }
      if (category === 'boom') throw new Error('hook bug')
      if (category === 'slow') throw Object.assign(new Error('Too many polls.'), { statusCode: 429 })
      return true
    }
  })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const boom = await fetch(`${origin}/events?category=boom&timeout=1`)
  t.equal(boom.status, 500)
  t.equal(await boom.text(), '{"error": "Internal server error."}')
  t.ok(logs.some((line) => line.includes('hook bug')), 'logged')
  const slow = await fetch(`${origin}/events?category=slow&timeout=1`)
  t.equal(slow.status, 429)
  t.same(await slow.json(), { error: 'Too many polls.' })
  await broker.close()
  const poll = await fetch(`${origin}/events?category=c&timeout=1`)
  t.equal(poll.status, 503)
  t.equal(poll.headers.get('retry-after'), '1')
  t.same(await poll.json(), { error: 'Service temporarily unavailable, retry shortly.' }, 'no internal detail')
  t.equal(broker.listeners, 0)
  const published = await fetch(`${origin}/publish`, { method: 'POST', headers: { authorization: 'Bearer k' }, body: '{"category":"c","data":1}' })
  t.equal(published.status, 503)
  t.equal(published.headers.get('retry-after'), '1')
  t.same(await published.json(), { error: 'Service temporarily unavailable, retry shortly.' })
})

t.test('a history read that fails after the request was accepted releases its listener and timer', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  broker.history = async () => {
    throw new Error('history backend down')
  }
  const s = await start(t, NO_LINGER, { broker })
  const res = await s.get('category=c&timeout=5&since_time=0')
  t.equal(res.status, 500)
  t.equal(broker.listeners, 0)
})

t.test('a client that leaves while history is read gets nothing written, and nothing stays behind', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const history = broker.history.bind(broker)
  let release: () => void = () => {}
  let reading: () => void = () => {}
  const readStarted = new Promise<void>((resolve) => { reading = resolve })
  broker.history = async (stream, query) => {
    reading()
    await new Promise<void>((resolve) => { release = resolve })
    return history(stream, query)
  }
  const s = await start(t, NO_LINGER, { broker })
  const controller = new AbortController()
  const gone = s.get('category=c&timeout=5&since_time=0', { signal: controller.signal }).catch((error: unknown) => error)
  await readStarted
  controller.abort()
  t.match(await gone, { name: 'AbortError' })
  while (broker.listeners > 0) await new Promise((resolve) => setImmediate(resolve))
  release()
  t.equal(broker.listeners, 0)
})

t.test('a request answered from history arms no timer; one parked after its read arms one, cleared when answered', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const history = broker.history.bind(broker)
  let release: () => void = () => {}
  let reading = false
  broker.history = async (stream, query) => {
    reading = true
    await new Promise<void>((resolve) => { release = resolve })
    return history(stream, query)
  }
  const s = await start(t, NO_LINGER, { broker })
  await s.publish('h', 'old')
  const baseline = timers()
  const answered = s.json('category=h&timeout=100&since_time=0')
  await until(() => reading)
  t.equal(timers(), baseline, 'no timer while history is read')
  release()
  t.same(eventsOf(await answered).map((e) => e.data), ['old'])
  t.equal(timers(), baseline, 'none after a backlog answer')
  broker.history = history
  const held = s.json('category=h&timeout=100')
  await until(() => timers() === baseline + 1)
  t.pass('a parked request arms its timer')
  await s.publish('h', 'new')
  t.same(eventsOf(await held).map((e) => e.data), ['new'])
  await until(() => broker.listeners === 0)
  t.equal(timers(), baseline, 'cleared when answered')
})

t.test('persistence needs the in-memory broker', async (t) => {
  const inner = new CountingBroker()
  t.teardown(() => inner.close())
  const foreign: Broker = {
    publish: (...args) => inner.publish(...args),
    subscribe: (...args) => inner.subscribe(...args),
    history: (...args) => inner.history(...args),
    position: (...args) => inner.position(...args),
    remove: (...args) => inner.remove(...args),
    close: async () => {}
  }
  const app = Fastify()
  await app.register(rtCore, { broker: foreign })
  await t.rejects(Promise.resolve(app.register(categoryPoll, { persistence: { file: 'never.jsonl' } }).ready()), /persistence needs @rt\/core's default MemoryBroker/)
})

t.test('persistence accepts a MemoryBroker from another copy of @rt/core (a duck-typed check, not instanceof)', async (t) => {
  // The same module loaded under another URL is another instance of the class, as a nested copy of @rt/core would be.
  const other = await import(`${import.meta.resolve('@rt/core').replace(/index\.js$/, 'memory-broker.js')}?another-copy`) as typeof import('@rt/core')
  const broker = new other.MemoryBroker()
  const dir = mkdtempSync(join(tmpdir(), 'rt-category-poll-copy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(rtCore, { broker })
  await app.register(categoryPoll, { persistence: { file: join(dir, 'events.jsonl') } })
  await app.ready()
  await app.rt.publish('farm', 'oink')
  await app.close()
  t.match(readFileSync(join(dir, 'events.jsonl'), 'utf8'), /oink/, 'the journal writes the other copy broker')
})

t.test('a category stays subscribed for subscriptionLingerMs after its last answer, and closing the app ends it', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const app = fastify()
  await app.register(rtCore, { broker })
  await app.register(categoryPoll, { subscriptionLingerMs: 60_000 })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  const held = fetch(`${origin}/events?category=l&timeout=30`)
  await until(() => broker.listeners === 1)
  await app.rt.publish('l', 'one')
  t.same(eventsOf(await (await held).json() as Record<string, unknown>).map((e) => e.data), ['one'])
  t.equal(broker.listeners, 1, 'answered, and still subscribed for the next poll')
  const next = fetch(`${origin}/events?category=l&timeout=30&since_time=0`)
  t.same(eventsOf(await (await next).json() as Record<string, unknown>).map((e) => e.data), ['one'], 'the next poll reads history as before')
  t.equal(broker.listeners, 1, 'on the same subscription')
  if (typeof app.server.closeAllConnections === 'function') app.server.closeAllConnections()
  await app.close()
  t.equal(broker.listeners, 0, 'closing the app unsubscribed the lingering category')
})
