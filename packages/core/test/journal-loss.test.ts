// Issue 14: the journal never gives a lost id to another message.
import { spawn } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import type { Test } from 'tap'
import { Journal, readJournal } from '../src/journal.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { RecordingSink, makeHub, request } from './helpers.js'

const writer = join(import.meta.dirname, 'fixtures', 'journal-writer.ts')

interface Seen { offset: number; epoch: string; data: string }

/** Runs the writer child until `stop(seen)` says so, then kills it with SIGKILL; resolves with what it printed. */
function crash(file: string, mode: 'held' | 'stream', stop: (seen: Seen[], line: string) => boolean): Promise<Seen[]> {
  const child = spawn(process.execPath, [...process.execArgv, writer, file, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
  const seen: Seen[] = []
  return new Promise((resolve, reject) => {
    let killed = false
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (killed) return
      const [offset, epoch, data] = line.split(' ')
      if (data !== undefined) seen.push({ offset: Number(offset), epoch: epoch!, data })
      if (stop(seen, line)) {
        killed = true
        child.kill('SIGKILL')
      }
    })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(seen)
      else reject(new Error(`the writer exited on its own (code ${code})`))
    })
  })
}

async function restart(t: Test, file: string): Promise<{ broker: MemoryBroker; journal: Journal }> {
  const broker = new MemoryBroker({ historyLimit: 100_000, historyTtl: Infinity })
  const journal = await Journal.open(broker, { file })
  t.teardown(async () => {
    await journal.close()
    await broker.close()
  })
  return { broker, journal }
}

/** What a client resuming `stream` from a position is told by the hub: its history, or `reject_history`. */
async function resume(t: Test, broker: MemoryBroker, offset: number, epoch: string, stream = 's'): Promise<Array<string | undefined>> {
  const { hub } = makeHub(t, { broker, publicStreams: true })
  const sink = new RecordingSink()
  const connected = await hub.connect(request(), sink)
  if (!('session' in connected)) throw new Error('not connected')
  const identifier = JSON.stringify({ channel: '$pubsub', stream_name: stream })
  await connected.session.handle({ command: 'subscribe', identifier, history: { streams: { [stream]: { offset, epoch } } } })
  return sink.types()
}

t.test('kill -9 with buffered records: the lost ids are never reused, a client resuming from one is told of the gap', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const seen = await crash(file, 'held', (_seen, line) => line === 'ready')
  t.equal(seen.length, 10)
  const last = seen.at(-1)!
  const { broker, journal } = await restart(t, file)
  t.match(journal.report, { unclean: true, renewed: 1, messages: 5 })
  const history = await broker.history('s', { after: { offset: last.offset, epoch: last.epoch } })
  t.equal(history.complete, false, 'the position of a lost message does not resolve')
  const next = await broker.publish('s', 'after restart')
  t.not(next.epoch, last.epoch, 'a new epoch: the id of a lost message names nothing else')
  t.equal(next.offset, 6, 'offsets go on from what the file holds, in the new epoch')
  t.same((await broker.history('s', { since: 0 })).messages.map((m) => [m.offset, m.data]).slice(0, 5),
    [[1, 'm1'], [2, 'm2'], [3, 'm3'], [4, 'm4'], [5, 'm5']], 'what was written is kept')
  const types = await resume(t, broker, last.offset, last.epoch)
  t.ok(types.includes('reject_history'), 'the client resuming from its last id gets reject_history')
  t.notOk(types.includes('data'), 'and no message under an id it knows')
})

t.test('kill -9 mid-publish: every id a client saw names the same message after restart, or the client is told of the gap', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const seen = await crash(file, 'stream', (seen) => seen.length >= 500)
  const { broker } = await restart(t, file)
  const after = await broker.publish('s', 'after restart')
  const history = await broker.history('s', { since: 0 })
  const byId = new Map(history.messages.map((m) => [`${m.offset}/${m.epoch}`, m.data]))
  let resolvedWrong = 0
  for (const { offset, epoch, data } of seen) {
    const stored = byId.get(`${offset}/${epoch}`)
    if (stored !== undefined && stored !== data) resolvedWrong++
  }
  t.equal(resolvedWrong, 0, 'no id names another message')
  t.not(after.epoch, seen[0]!.epoch, 'an unclean stop of a buffered journal starts a new epoch')
  const last = seen.at(-1)!
  t.ok((await resume(t, broker, last.offset, last.epoch)).includes('reject_history'), 'resuming from the last id seen: reject_history')
})

t.test('a clean shutdown keeps the epoch', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const first = new MemoryBroker({ historyTtl: Infinity })
  const journal = await Journal.open(first, { file, flushIntervalMs: 60_000 })
  const published = await first.publish('s', 'one')
  await journal.close()
  await first.close()
  const { broker, journal: reopened } = await restart(t, file)
  t.match(reopened.report, { unclean: false, renewed: 0, malformed: 0 })
  t.equal((await broker.publish('s', 'two')).epoch, published.epoch)
  t.equal((await resume(t, broker, 1, published.epoch)).includes('reject_history'), false)
})

const record = (stream: string, offset: number, data: string): string =>
  JSON.stringify({ stream, offset, epoch: 'E', timestamp: 1000 + offset, data })

t.test('a journal cut at every byte of its last line: the stream either keeps the whole message or starts a new epoch', async (t) => {
  const dir = t.testdir()
  const head = [JSON.stringify({ journal: 1, flushIntervalMs: 0 }), record('s', 1, 'one'), record('other', 1, 'x')].join('\n') + '\n'
  const lastLine = record('s', 2, 'two')
  for (let cut = 0; cut <= lastLine.length; cut++) {
    const file = join(dir, `cut-${cut}.jsonl`)
    writeFileSync(file, head + lastLine.slice(0, cut))
    const { streams, report } = await readJournal(file)
    const s = streams.find((x) => x.stream === 's')!
    const other = streams.find((x) => x.stream === 'other')!
    if (cut === lastLine.length) {
      t.same([s.epoch, s.lastOffset, report.malformed, report.renewed], ['E', 2, 0, 0], 'the whole line: nothing lost, same epoch')
      continue
    }
    if (cut === 0) {
      t.same([s.epoch, report.renewed], ['E', 0], 'nothing of the line was written: nothing lost')
      continue
    }
    t.equal(report.malformed, 1, `cut at ${cut}: the torn line is counted`)
    t.not(s.epoch, 'E', `cut at ${cut}: the stream of the torn line starts a new epoch`)
    t.same(s.messages.map((m) => [m.offset, m.epoch, m.data]), [[1, s.epoch, 'one']], `cut at ${cut}: what was whole is kept, relabelled`)
    // A cut inside the stream name cannot tell which stream the line was: every stream is renewed.
    const named = cut >= '{"stream":"s"'.length
    t.equal(other.epoch === 'E', named, `cut at ${cut}: another stream keeps its epoch only when the torn line names its own`)
  }
})

t.test('a broken middle line: its stream starts a new epoch, so its offset hole is never a silent gap', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  writeFileSync(file, [record('a', 1, 'a1'), record('b', 1, 'b1').replace('"data"', '"da\u0000ta'), record('a', 2, 'a2'), record('b', 2, 'b2')].join('\n') + '\n')
  const { broker, journal } = await restart(t, file)
  t.match(journal.report, { malformed: 1, renewed: 1, unclean: false })
  t.equal((await broker.position('a')).epoch, 'E', 'an intact stream keeps its epoch')
  const b = await broker.history('b', { after: { offset: 0, epoch: 'E' } })
  t.equal(b.complete, false, 'a reader of b from before the broken line is told its history is gone')
  t.same(b.messages, [])
  t.same((await broker.history('b', { since: 0 })).messages.map((m) => m.data), ['b2'])
  t.ok((await resume(t, broker, 0, 'E', 'b')).includes('reject_history'))
})

t.test('an unbuffered journal without a shutdown marker lost nothing: epochs are kept', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  writeFileSync(file, [JSON.stringify({ journal: 1, flushIntervalMs: 0 }), record('s', 1, 'one')].join('\n') + '\n')
  const { broker, journal } = await restart(t, file)
  t.match(journal.report, { unclean: false, renewed: 0 })
  t.equal((await broker.position('s')).epoch, 'E')
})

t.test('a missing journal file: every stream comes back in a new epoch', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const first = new MemoryBroker({ historyTtl: Infinity })
  const journal = await Journal.open(first, { file })
  const published = await first.publish('s', 'one')
  await journal.close()
  await first.close()
  t.ok(readFileSync(file, 'utf8').includes('"one"'))
  rmSync(file)
  const { broker } = await restart(t, file)
  t.equal((await broker.history('s', { after: { offset: 1, epoch: published.epoch } })).complete, false)
  t.not((await broker.publish('s', 'two')).epoch, published.epoch)
  t.ok((await resume(t, broker, 1, published.epoch)).includes('reject_history'))
})

t.test('a broken line whose stream cannot be read renews every stream', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  writeFileSync(file, [record('a', 1, 'a1'), '{"stream":"bad\\q escape","offset":1', record('b', 1, 'b1'), '{"stream":"","offset":2'].join('\n') + '\n')
  const { streams, report } = await readJournal(file)
  t.match(report, { malformed: 2, renewed: 2 })
  t.same(streams.map((s) => s.epoch === 'E'), [false, false])
})

t.test('a line nested deeper than any broker stores is a broken line, not a failed load', async (t) => {
  const file = join(t.testdir(), 'journal.jsonl')
  const nest = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)
  writeFileSync(file, [
    `{"stream":"ok","offset":1,"epoch":"E","timestamp":1,"data":${nest(1000)}}`,
    `{"stream":"deep","offset":1,"epoch":"E","timestamp":1,"data":${nest(1001)}}`
  ].join('\n') + '\n')
  const { streams, report } = await readJournal(file)
  t.match(report, { malformed: 1, messages: 1 })
  t.equal(streams.find((s) => s.stream === 'ok')!.messages[0]!.json, nest(1000))
  t.notOk(streams.some((s) => s.stream === 'deep'), 'a stream with nothing else loaded starts fresh, in a new epoch when written')
})
