// Issue 14: one deep or huge input is refused at the entry and breaks nothing for anyone else.
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type { StreamMessage } from '../src/broker.js'
import { rtCore } from '../src/plugin.js'
import { RecordingSink, makeHub, request } from './helpers.js'

/** JSON text nested `depth` levels: `[[[…]]]`. */
const deep = (depth: number, open = '[', close = ']'): string => open.repeat(depth) + close.repeat(depth)

t.test('the hub: a deep identifier or action payload is a command error, a long stream name a rejection; the session goes on', async (t) => {
  const warnings: unknown[] = []
  const { hub, store } = makeHub(t, { publicStreams: true, logger: { error: (...args: unknown[]) => warnings.push(args), warn: () => undefined } })
  const sink = new RecordingSink()
  const connected = await hub.connect(request(), sink)
  if (!('session' in connected)) throw new Error('not connected')
  const { session } = connected
  const deepIdentifier = `{"channel":"$pubsub","stream_name":"s","p":${deep(3000)}}`
  t.match(await session.handle({ command: 'subscribe', identifier: deepIdentifier }), { ok: false, error: /nested deeper/ })
  t.match(await session.handle(JSON.stringify({ command: 'subscribe', identifier: deepIdentifier })), { ok: false, error: /nested deeper/ })
  const deeper = `{"channel":"$pubsub","stream_name":"s","p":${deep(5000)}}`
  t.match(await session.handle({ command: 'subscribe', identifier: deeper }), { ok: false, error: /identifier longer than 8192/ })
  const long = JSON.stringify({ channel: '$pubsub', stream_name: 's'.repeat(5000) })
  t.same(await session.handle({ command: 'subscribe', identifier: long }), { ok: true })
  t.same(sink.types().at(-1), 'reject_subscription', 'a stream name over the limit is never joined')
  const identifier = JSON.stringify({ channel: '$pubsub', stream_name: 's' })
  t.same(await session.handle({ command: 'subscribe', identifier }), { ok: true })
  t.match(await session.handle({ command: 'message', identifier, data: `{"action":"x","p":${deep(5000)}}` }), { ok: false, error: /perform data: JSON nested deeper/ })
  t.match(await session.handle({ command: 'message', identifier, data: '{' }), { ok: false, error: 'perform data must be a JSON string' })
  t.same(warnings, [], 'nothing failed inside: no "saving the session failed"')
  t.ok(await store.get(session.sid), 'the session was saved')
  t.same(Object.keys((await store.get(session.sid))!.subscriptions), [identifier])
})

async function broadcastApp(t: Test): Promise<{ app: FastifyInstance; post: (body: unknown) => Promise<Response> }> {
  const app = Fastify()
  await app.register(rtCore, { broadcastKey: 'key' })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const post = (body: unknown): Promise<Response> =>
    fetch(`${address}/_broadcast`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { authorization: 'Bearer key' } })
  return { app, post }
}

t.test('/_broadcast: deep data, a huge stream name, too many publications are refused and nothing is published', async (t) => {
  const { app, post } = await broadcastApp(t)
  const received: StreamMessage[] = []
  app.rt.broker.subscribe('s', (m) => received.push(m))
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['data nested 6000 levels', { stream: 's', data: deep(6000) }, 400, /data nested deeper than 100 levels/],
    ['deep data in a batch', [{ stream: 's', data: '1' }, { stream: 's', data: deep(200, '{"a":', '}').replace(/\{"a":\}/, '{"a":1}') }], 400, /publication 1: data nested deeper/],
    ['a 900 KB stream name', { stream: 'x'.repeat(900 * 1024), data: '1' }, 400, /stream name longer than 1024 characters/],
    ['a deep body', `[${deep(6000)}]`, 400, /body: JSON nested deeper/],
    ['1001 publications', Array.from({ length: 1001 }, () => ({ stream: 's', data: '1' })), 413, /more than 1000 publications/]
  ]
  for (const [name, body, status, reason] of cases) {
    const res = await post(body)
    t.equal(res.status, status, name)
    t.match(((await res.json()) as { message: string }).message, reason, name)
  }
  t.same(received, [], 'nothing of a refused body was published')
  const res = await post({ stream: 's', data: '{"ok": true}' })
  t.equal(res.status, 201, 'the next good broadcast goes through')
  t.same(received.map((m) => [m.data, m.json]), [[{ ok: true }, '{"ok": true}']], 'its data string is stored as received: the JSON text readers write')
})


t.test('/_broadcast without a body is a 400', async (t) => {
  const { app } = await broadcastApp(t)
  const res = await app.inject({ method: 'POST', url: '/_broadcast', headers: { authorization: 'Bearer key' } })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { message: 'body is not valid JSON' })
})
