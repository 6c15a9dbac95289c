// Issue 14: no poison message, bounded input, a journal that says when it lost lines — over real sockets.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { rtCore } from '@rt/core'
import Fastify from 'fastify'
import t from 'tap'
import { categoryPoll } from '../src/index.js'
import { eventsOf, start, until } from './helpers.js'

const deep = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

t.test('a 5,000-level /category/publish is refused; a held poll and since_time=0 readers get every later event', async (t) => {
  const s = await start(t, { enablePublish: true, publishKey: 'k' })
  const publish = (body: string): Promise<Response> => fetch(s.publishUrl, { method: 'POST', headers: { authorization: 'Bearer k' }, body })
  const held = s.json('category=farm&timeout=30')
  // The poll is held once the broker has a listener on the stream.
  await until(() => (s.app.rt.broker as unknown as { streams: Map<string, unknown> }).streams.has('farm'))
  const poison = await publish(`{"category":"farm","data":${deep(5000)}}`)
  t.equal(poison.status, 400, 'refused, not 500 with the message stored')
  t.same(await poison.json(), { error: 'Invalid POST body json: nested deeper than 100 levels.' })
  for (let i = 0; i < 3; i++) t.equal((await publish(JSON.stringify({ category: 'farm', data: { i } }))).status, 200)
  t.same(eventsOf(await held).map((e) => e.data), [{ i: 0 }], 'the held poll got the first good event')
  const all = await s.get('category=farm&timeout=1&since_time=0')
  t.equal(all.status, 200)
  t.same(eventsOf((await all.json()) as Record<string, unknown>).map((e) => e.data), [{ i: 0 }, { i: 1 }, { i: 2 }])
})

t.test('an accepted deep event (the app\'s own publish, 900 levels) is answered to since_time readers', async (t) => {
  const s = await start(t)
  let value: unknown = 0
  for (let i = 0; i < 900; i++) value = [value]
  await s.publish('d', value)
  const res = await s.get('category=d&timeout=1&since_time=0')
  t.equal(res.status, 200)
  t.same(eventsOf((await res.json()) as Record<string, unknown>).map((e) => e.data), [value])
})

t.test('a journal that dropped lines is loaded with a warning and counts; the stream restarts in a new epoch', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  const line = (offset: number): string => JSON.stringify({ stream: 'farm', offset, epoch: 'E', timestamp: 1000 + offset, data: offset })
  writeFileSync(file, `${line(1)}\n${line(2).slice(0, 20)}`)
  const logs: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    }
  })
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(rtCore)
  await app.register(categoryPoll, { persistence: { file } })
  await app.ready()
  t.teardown(() => app.close())
  const warning = logs.find((entry) => entry.level === 40)
  t.match(warning, { malformed: 1, renewed: 1, msg: /journal loaded with 1 unreadable line\(s\); 1 stream\(s\) restarted in a new epoch/ })
  t.not((await app.rt.broker.position('farm')).epoch, 'E')
  await app.close()

  // A buffered journal that was not closed: everything it had not written is lost, so every stream is renewed.
  writeFileSync(file, `${JSON.stringify({ journal: 1, flushIntervalMs: 200 })}\n${line(1)}\n`)
  logs.length = 0
  const restarted = Fastify({ logger: { level: 'info', stream } })
  await restarted.register(rtCore)
  await restarted.register(categoryPoll, { persistence: { file } })
  await restarted.ready()
  t.teardown(() => restarted.close())
  t.match(logs.find((entry) => entry.level === 40), { malformed: 0, renewed: 1, unclean: true, msg: /restarted in a new epoch after an unclean shutdown/ })
})
