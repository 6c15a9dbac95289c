import t from 'tap'
import { FAST, connectTo, poll, pubsub, serve } from './helpers.js'

/** The lines of one stream's broadcasts and presence events, as `[kind, payload]`. */
const traffic = (lines: Array<Record<string, unknown>>): unknown[] =>
  lines.filter((line) => 'message' in line && (line.type === undefined || line.type === 'presence'))
    .map((line) => [line.type ?? 'data', line.message])

const whisper = (stream: string, data: unknown): string => JSON.stringify({ command: 'whisper', identifier: pubsub(stream), data })
const join = (stream: string, id: string, info: unknown): string => JSON.stringify({ command: 'join', identifier: pubsub(stream), presence: { id, info } })

t.test('whispers and presence events published while a client is between two polls come with its next poll, once, in order', async (t) => {
  const { app, url } = await serve(t, { ...FAST, pollInterval: 0.2 })
  const a = await connectTo(url, ['room'])
  const b = await connectTo(url, ['room'])
  // b has no request open from here on: everything below is published between two of its polls.
  const sent = await poll(url, a.id, [whisper('room', { typing: 'a' }), join('room', 'alice', { name: 'Alice' })].join('\n'))
  t.equal(sent.status, 200)
  await app.rt.publish('room', { n: 1 })
  await poll(url, a.id, whisper('room', { typing: 'a', again: true }))
  const next = await poll(url, b.id)
  t.same(traffic(next.lines), [
    ['data', { typing: 'a' }],
    ['presence', { type: 'join', id: 'alice', info: { name: 'Alice' } }],
    ['data', { n: 1 }],
    ['data', { typing: 'a', again: true }]
  ], "b's next poll carries them, in the order they were published")
  await app.rt.publish('room', { n: 2 })
  t.same(traffic((await poll(url, b.id)).lines), [['data', { n: 2 }]], 'and only once')
  const own = await poll(url, a.id)
  t.notOk(JSON.stringify(own.lines).includes('typing'), 'the sender never gets its own whisper')
})

t.test('a client between polls keeps at most `transientBacklog` transient messages: the oldest go first', async (t) => {
  const { url } = await serve(t, { ...FAST, pollInterval: 0.2 }, { transientBacklog: 3 })
  const a = await connectTo(url, ['room'])
  const b = await connectTo(url, ['room'])
  for (let n = 1; n <= 5; n++) await poll(url, a.id, whisper('room', { n }))
  t.same(traffic((await poll(url, b.id)).lines), [['data', { n: 3 }], ['data', { n: 4 }], ['data', { n: 5 }]])
})
