import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { Journal, readJournal, type JournalOptions } from '../src/journal.js'
import { MemoryBroker, type MemoryBrokerOptions } from '../src/memory-broker.js'

const broker = (t: Test, options: MemoryBrokerOptions = {}): MemoryBroker => {
  const b = new MemoryBroker({ historyLimit: 1000, historyTtl: Infinity, ...options })
  t.teardown(() => b.close())
  return b
}

async function open(t: Test, b: MemoryBroker, options: JournalOptions): Promise<Journal> {
  const journal = await Journal.open(b, options)
  t.teardown(() => journal.close())
  return journal
}

/** The records of a journal file, without its header and shutdown marker. */
const lines = (file: string): unknown[] =>
  readFileSync(file, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((record) => !('journal' in record) && !('shutdown' in record))

t.test('a restart restores streams with their offsets, epochs, timestamps, data and meta', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const first = broker(t)
  const journal = await open(t, first, { file })
  t.equal(journal.path, file)
  t.same(journal.report, { lines: 0, blank: 0, malformed: 0, stale: 0, golongpoll: 0, streams: 0, messages: 0, unclean: false, renewed: 0 }, 'a missing file is an empty journal')
  const a1 = await first.publish('a', { n: 1 })
  const b1 = await first.publish('b/with/slashes', 'x', { meta: { broadcast_type: 'note' } })
  await first.publish('a', 'transient', { transient: true })
  const a2 = await first.publish('a', [1, 2])
  await first.publish('a', undefined)
  await journal.close()
  await journal.close()

  const second = broker(t)
  const reopened = await open(t, second, { file })
  t.match(reopened.report, { lines: 4, streams: 2, messages: 4, malformed: 0 })
  const a = await second.history('a', { since: 0 })
  t.same(a.messages.map((m) => [m.offset, m.epoch, m.timestamp, m.data]), [
    [1, a1.epoch, a1.timestamp, { n: 1 }],
    [2, a1.epoch, a2.timestamp, [1, 2]],
    [3, a1.epoch, a.messages[2]!.timestamp, null]
  ], 'transient messages are never journaled; undefined data comes back as null')
  const b = await second.history('b/with/slashes', { after: { offset: 0, epoch: b1.epoch } })
  t.equal(b.complete, true, 'a position from before the restart still resolves')
  t.same(b.messages[0]!.meta, { broadcast_type: 'note' })
  const next = await second.publish('a', 'after restart')
  t.same([next.offset, next.epoch], [4, a1.epoch], 'offsets continue in the same epoch')
})

t.test('flushIntervalMs 0 writes each record before publish returns', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const b = broker(t)
  await open(t, b, { file, fsync: true })
  await b.publish('s', 'one')
  t.match(lines(file), [{ stream: 's', offset: 1, data: 'one' }])
})

t.test('flushIntervalMs > 0 batches records until the interval, flush() or close()', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const b = broker(t)
  const journal = await open(t, b, { file, flushIntervalMs: 60_000 })
  await b.publish('s', 'one')
  t.same(lines(file), [], 'buffered: a crash now would lose this record')
  journal.flush()
  t.equal(lines(file).length, 1)
  await b.publish('s', 'two')
  await journal.close()
  t.equal(lines(file).length, 2, 'close flushes')
  await b.publish('s', 'three')
  t.equal(lines(file).length, 2, 'a closed journal records nothing')

  const timed = join(t.testdir(), 'timed.jsonl')
  const c = broker(t)
  await open(t, c, { file: timed, flushIntervalMs: 5 })
  await c.publish('s', 'one')
  while (lines(timed).length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  t.pass('the interval flushes')
})

t.test('blank lines, CRLF, a torn last line and a huge line lose nothing else', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const huge = 'h'.repeat(200 * 1024)
  const record = (offset: number, data: unknown): string => JSON.stringify({ stream: 's', offset, epoch: 'E', timestamp: 1000 + offset, data })
  writeFileSync(file, [
    '', record(1, 'one'), '   ', `${record(2, huge)}\r`, record(3, 'three'), 'not json', '{"unknown":true}', '{"stream":"s","offset":4,"epo'
  ].join('\n'))
  const b = broker(t)
  const journal = await open(t, b, { file })
  t.match(journal.report, { blank: 2, malformed: 3, messages: 3 })
  const history = await b.history('s', { since: 0 })
  t.same(history.messages.map((m) => m.offset), [1, 2, 3], 'the line after the >64 KiB one is kept')
  t.equal((history.messages[1]!.data as string).length, huge.length)
  await b.publish('s', 'four')
  const written = lines(file)
  t.match(written.at(-1), { offset: 4, data: 'four' }, 'appends after a torn line parse: the file was compacted on open')
  t.equal(readFileSync(file, 'utf8').includes('"epo\n'), false)
})

t.test('out-of-order lines: ordered by offset, latest record of an offset wins, retired epochs ignored', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const m = (stream: string, epoch: string, offset: number, timestamp: number, data: unknown): string =>
    JSON.stringify({ stream, offset, epoch, timestamp, data })
  writeFileSync(file, [
    m('s', 'old', 1, 10, 'old epoch'),
    m('s', 'E', 3, 300, 'three'),
    m('s', 'E', 1, 500, 'one'),
    m('s', 'E', 2, 200, 'two, first write'),
    m('s', 'E', 2, 200, 'two'),
    m('s', 'old', 2, 20, 'late line of a retired epoch'),
    JSON.stringify({ remove: 's', epoch: 'old', offsets: [1] }),
    JSON.stringify({ stream: 's', epoch: 'old', lastOffset: 9 }),
    JSON.stringify({ stream: 's', epoch: 'E', lastOffset: 7 }),
    m('gone', 'G', 1, 1, 'x'),
    JSON.stringify({ drop: 'gone' }),
    JSON.stringify({ drop: 'gone' }),
    JSON.stringify({ drop: 'never-seen' }),
    m('reborn', 'R1', 1, 1, 'first life'),
    JSON.stringify({ drop: 'reborn' }),
    m('reborn', 'R2', 1, 2, 'second life'),
    JSON.stringify({ remove: 'removed', epoch: 'X', offsets: [2] }),
    m('removed', 'X', 1, 1, 'kept'),
    m('removed', 'X', 2, 2, 'read once')
  ].join('\n') + '\n')
  const { streams, report } = await readJournal(file)
  t.match(report, { stale: 3, malformed: 0 })
  const byName = new Map(streams.map((s) => [s.stream, s]))
  const s = byName.get('s')!
  t.same(s.messages.map((x) => [x.offset, x.data, x.timestamp]), [[1, 'one', 500], [2, 'two', 500], [3, 'three', 500]],
    'timestamps never go backwards along offsets')
  t.same([s.epoch, s.lastOffset], ['E', 7])
  t.notOk(byName.has('gone'), 'a dropped stream stays dropped')
  t.same(byName.get('reborn')!.messages.map((x) => x.data), ['second life'])
  t.same(byName.get('removed')!.messages.map((x) => x.data), ['kept'], 'a removal applies even when it comes first')
})

t.test("reads golongpoll's FilePersistor format, clock-skewed lines included", async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'golongpoll.data')
  const event = (timestamp: number, category: string, data: unknown, id: string): string => JSON.stringify({ timestamp, category, data, id })
  // golongpoll writes "\n" before each record: a leading newline and no trailing one.
  writeFileSync(file, '\n' + [
    event(2000, 'farm', 'oink', '2746c9a2-84b6-4d6d-a6c9-8bb1c2bc485a'),
    event(1000, 'farm', { a: 1 }, 'a1e3a6f2-0f32-4c55-9d36-3f2c4c1c1b1b'),
    event(2000, 'farm', 'moo', 'b3a1c7d2-5f4e-4d3c-8b2a-1a2b3c4d5e6f'),
    event(1500, 'zoo', 0, 'c4b2d8e3-6a5f-4e4d-9c3b-2b3c4d5e6f70')
  ].join('\n'))
  const b = broker(t)
  const journal = await open(t, b, { file })
  t.match(journal.report, { golongpoll: 4, streams: 2, messages: 4, blank: 1 })
  const farm = await b.history('farm', { since: 0 })
  t.same(farm.messages.map((m) => [m.offset, m.timestamp, m.data]), [[1, 1000, { a: 1 }], [2, 2000, 'oink'], [3, 2000, 'moo']],
    'ordered by timestamp (file order among equal ones), numbered from 1')
  t.same((await b.history('zoo', { since: 0 })).messages.map((m) => m.data), [0])
  t.match(lines(file)[0], { stream: 'farm', lastOffset: 3 }, 'rewritten in rt format on open')

  const mixed = join(dir, 'mixed.jsonl')
  writeFileSync(mixed, [
    event(1, 'farm', 'golongpoll line', '2746c9a2-84b6-4d6d-a6c9-8bb1c2bc485a'),
    JSON.stringify({ stream: 'farm', offset: 1, epoch: 'E', timestamp: 5, data: 'rt line' })
  ].join('\n'))
  const { streams, report } = await readJournal(mixed)
  t.match(report, { stale: 1, golongpoll: 1 })
  t.same(streams.map((s) => s.messages.map((m) => m.data)), [['rt line']], 'rt records win over golongpoll lines for the same stream')
})

t.test('removals and drops are journaled; a stream whose newest messages were removed never reuses an offset', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  let now = 1_000_000
  const first = broker(t, { historyTtl: 10, now: () => now })
  const journal = await open(t, first, { file })
  await first.publish('short', 'expires')
  now += 11_000
  await first.publish('notes', 'read me once')
  await first.publish('notes', 'read me too')
  await first.remove('notes', [2])
  await first.remove('notes', [2, 99])
  await first.remove('nothing-here', [1])
  first.sweep()
  t.match(lines(file).slice(-2), [{ remove: 'notes', offsets: [2] }, { drop: 'short' }], 'only offsets actually removed are recorded')
  await journal.close()

  const second = broker(t, { historyTtl: 10, now: () => now })
  await open(t, second, { file })
  const notes = await second.history('notes', { since: 0 })
  t.same(notes.messages.map((m) => m.data), ['read me once'], 'a removed message does not come back')
  t.equal((await second.publish('notes', 'new')).offset, 3, 'the removed offset is not given again')
  t.equal((await second.history('short', { since: 0 })).messages.length, 0)

  // Compaction writes each stream's position, so the last offset survives even when no message is left.
  const compacting = join(dirname(file), 'compacted.jsonl')
  const third = broker(t)
  const j3 = await open(t, third, { file: compacting })
  await third.publish('p', 1)
  await third.publish('p', 2)
  await third.remove('p', [2])
  j3.compact()
  t.same(lines(compacting).map((l) => (l as { lastOffset?: number; offset?: number }).lastOffset ?? (l as { offset: number }).offset), [2, 1])
  await j3.close()
  j3.compact()
  t.equal(lines(compacting).length, 2, 'a closed journal does not compact')
  const fourth = broker(t)
  await open(t, fourth, { file: compacting })
  t.equal((await fourth.publish('p', 3)).offset, 3)
})

t.test('compaction keeps the file near its live size', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const b = broker(t, { historyLimit: 10 })
  await open(t, b, { file, compactAfterBytes: 4096 })
  for (let i = 0; i < 2000; i++) await b.publish(`s${i % 3}`, { i, padding: 'x'.repeat(50) })
  t.ok(statSync(file).size < 3 * 4096, `size ${statSync(file).size}`)
  const restored = broker(t, { historyLimit: 10 })
  const { streams } = await readJournal(file)
  restored.restore(streams)
  const kept = restored.snapshot()
  t.same(kept.map((s) => s.messages.length), [10, 10, 10])
  t.same(kept.flatMap((s) => s.messages.map((m) => (m.data as { i: number }).i)).sort((x, y) => x - y).slice(-3), [1997, 1998, 1999])
})

t.test('a streams filter limits what is persisted and restored', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  writeFileSync(file, JSON.stringify({ stream: 'tmp:old', offset: 1, epoch: 'E', timestamp: 1, data: 1 }) + '\n')
  const b = broker(t, { historyTtl: 1, now: () => 0 })
  const journal = await open(t, b, { file, streams: (s) => !s.startsWith('tmp:') })
  t.equal((await b.history('tmp:old', { since: 0 })).messages.length, 0)
  await b.publish('tmp:x', 1)
  await b.publish('kept', 1)
  await b.remove('tmp:x', [1])
  b.subscribe('tmp:y', () => {})()
  t.same(lines(file).map((l) => (l as { stream: string }).stream), ['kept'])
  b.subscribe('tmp:z', () => {})
  journal.compact()
  t.same(lines(file).map((l) => (l as { stream: string }).stream), ['kept', 'kept'], 'compaction skips them too')
})

t.test('write failures are reported and the broker keeps working', async (t) => {
  const dir = t.testdir()
  const errors: Error[] = []
  const b = broker(t)
  const journal = await open(t, b, { file: join(dir, 'j.jsonl'), onError: (error) => errors.push(error) })
  closeSync((journal as unknown as { fd: number }).fd)
  const message = await b.publish('s', 1)
  t.equal(message.offset, 1)
  t.equal(errors.length, 1)
  mkdirSync(join(dir, 'j.jsonl.compact'))
  journal.compact()
  t.equal(errors.length, 2, 'a failed compaction leaves the old file')
  // Give the journal a valid descriptor again so close() succeeds.
  ;(journal as unknown as { fd: number }).fd = openSync(join(dir, 'j.jsonl'), 'a')

  const warned = new Promise<Error>((resolve) => process.once('warning', resolve))
  const c = broker(t)
  const defaulted = await open(t, c, { file: join(dir, 'k.jsonl') })
  closeSync((defaulted as unknown as { fd: number }).fd)
  await c.publish('s', 1)
  t.equal((await warned).name, 'JournalWarning', 'by default a failure is a process warning')
  ;(defaulted as unknown as { fd: number }).fd = openSync(join(dir, 'k.jsonl'), 'a')
})

t.test('options are validated', async (t) => {
  const b = broker(t)
  const file = join(t.testdir(), 'j.jsonl')
  const cases: Array<[unknown, RegExp]> = [
    [null, /options must be an object/],
    [{}, /file must be a non-empty path/],
    [{ file: '' }, /file must be/],
    [{ file, flushIntervalMs: -1 }, /flushIntervalMs/],
    [{ file, flushIntervalMs: 1.5 }, /flushIntervalMs/],
    [{ file, compactAfterBytes: 0 }, /compactAfterBytes/],
    [{ file, streams: 'all' }, /streams must be a function/],
    [{ file, onError: true }, /onError must be a function/]
  ]
  for (const [options, message] of cases) {
    await t.rejects(Journal.open(b, options as JournalOptions), { name: 'TypeError', message }, String(message))
  }
  await t.rejects(Journal.open({} as MemoryBroker, { file }), /needs a MemoryBroker/)
  await t.rejects(Journal.open(b, { file: join(file, 'no-such-dir', 'j.jsonl') }), { code: 'ENOENT' })
})

t.test('observers added to a running broker can be removed', async (t) => {
  const b = broker(t)
  const seen: number[] = []
  const stop = b.observe({ onAppend: (m) => seen.push(m.offset) })
  await b.publish('s', 1)
  stop()
  await b.publish('s', 2)
  t.same(seen, [1])
  t.same(b.snapshot().map((s) => [s.stream, s.lastOffset, s.messages.length]), [['s', 2, 2]])
})
