import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { rtCore } from '@rt/core'
import Fastify from 'fastify'
import t from 'tap'
import { categoryPoll, type PersistenceOptions } from '../src/index.js'
import { eventsOf, start, until, type WireEvent } from './helpers.js'

const persisted = (t: Parameters<typeof start>[0], persistence: PersistenceOptions) =>
  start(t, { persistence, enablePublish: true, publishKey: 'k' })

t.test('events survive a restart with their ids and timestamps; cursors from before still work (case 39)', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  const first = await persisted(t, { file })
  await first.publish('farm', 'oink')
  const res = await fetch(first.publishUrl, { method: 'POST', headers: { authorization: 'Bearer k' }, body: '{"category":"farm","data":{"moo":2}}' })
  t.equal(res.status, 200)
  const before = eventsOf(await first.json('category=farm&timeout=1&since_time=0'))
  await first.app.close()

  const second = await persisted(t, { file })
  t.same(eventsOf(await second.json('category=farm&timeout=1&since_time=0')), before, 'same ids, timestamps and data')
  const last = before.at(-1)!
  await second.publish('farm', 'after restart')
  const next = eventsOf(await second.json(`category=farm&timeout=1&since_time=${last.timestamp}&last_id=${encodeURIComponent(last.id)}`))
  t.same(next.map((e) => e.data), ['after restart'], 'the last_id from before the restart is still a position')
})

t.test('batched writes are flushed on close (case 40)', async (t) => {
  const file = join(t.testdir(), 'events.jsonl')
  const first = await persisted(t, { file, flushIntervalMs: 60_000 })
  await first.publish('c', 1)
  t.notMatch(readFileSync(file, 'utf8'), /"data":1/, 'still buffered')
  await first.app.close()
  t.match(readFileSync(file, 'utf8'), /"data":1/)
})

t.test("a golongpoll FilePersistor file is loaded: clock skew, blank lines, a >64 KiB line and a torn last line lose nothing else (cases 40, 41)", async (t) => {
  const file = join(t.testdir(), 'golongpoll.data')
  const huge = 'x'.repeat(70 * 1024)
  const line = (timestamp: number, data: unknown, id: string): string => JSON.stringify({ timestamp, category: 'farm', data, id })
  writeFileSync(file, '\n' + [
    line(3000, 'third', '5c9e4c36-6f0a-4a8e-9b56-0c1f6a3e8d21'),
    line(1000, 'first', '2746c9a2-84b6-4d6d-a6c9-8bb1c2bc485a'),
    '',
    line(2000, huge, '9d3e1c55-1111-4b3a-8e0e-0a1b2c3d4e5f'),
    line(2000, 'same ms', 'ab3e1c55-1111-4b3a-8e0e-0a1b2c3d4e5f'),
    line(4000, 'fourth', 'bb3e1c55-1111-4b3a-8e0e-0a1b2c3d4e5f'),
    '{"timestamp":5000,"category":"farm","da'
  ].join('\n'))
  const s = await persisted(t, { file })
  const events: WireEvent[] = eventsOf(await s.json('category=farm&timeout=1&since_time=0'))
  t.same(events.map((e) => (e.data === huge ? 'huge' : e.data)), ['first', 'huge', 'same ms', 'third', 'fourth'], 'ordered by timestamp; golongpoll would panic on the skew')
  t.match(events[0]!.id, /^[0-9a-f]{8}-[0-9a-f]{4}-8000-8000-000000000001$/, 'events get rt ids (offset 1)')
  // A golongpoll client resuming with its old UUID cursor gets everything at or after its since_time: no gap.
  const resumed = eventsOf(await s.json('category=farm&timeout=1&since_time=2000&last_id=9d3e1c55-1111-4b3a-8e0e-0a1b2c3d4e5f'))
  t.same(resumed.map((e) => (e.data === huge ? 'huge' : e.data)), ['huge', 'same ms', 'third', 'fourth'])
})

t.test('journal write failures are logged and publishing goes on', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'events.jsonl')
  const logs: string[] = []
  const app = Fastify({ logger: { level: 'error', stream: { write: (text: string) => logs.push(text) } } })
  await app.register(rtCore)
  await app.register(categoryPoll, { persistence: { file, compactAfterBytes: 1 } })
  await app.ready()
  t.teardown(() => app.close())
  mkdirSync(`${file}.compact`)
  await app.rt.publish('c', 'still published')
  await until(() => logs.some((text) => text.includes('journal could not write')))
  t.equal((await app.rt.broker.history('c', { since: 0 })).messages.length, 1)
})
