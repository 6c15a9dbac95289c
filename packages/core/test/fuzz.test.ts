// Fuzz (issue 14): hostile shapes in every JSON field of core's entry points. Nothing 5xx, nothing thrown,
// nothing accepted that a reader cannot write out, and the next good input works.
import Fastify from 'fastify'
import t from 'tap'
import { broadcastReply, encodeServerMessage } from '../src/hub/protocol.js'
import { parseJsonl } from '../src/hub/commands.js'
import { rtCore } from '../src/plugin.js'
import { deepJson, hostileJsonTexts, hugeName, manyLines, manyStreamCursor, random } from '../src/testing/hostile.js'
import { RecordingSink, makeHub, request } from './helpers.js'

const texts = hostileJsonTexts(14)

t.test('the hostile generator is deterministic and covers every shape', async (t) => {
  t.same(hostileJsonTexts(14), texts)
  t.not(random(1)(), random(2)())
  t.equal(deepJson(2, 'mixed'), '[{"k":0}]')
  t.equal(JSON.parse(deepJson(3, 'object')).k.k.k, 0)
  t.equal(manyStreamCursor(2), '~1/E/s0,1/E/s1')
  t.equal(hugeName(3), 'nnn')
})

t.test('/_broadcast: every field gets every hostile shape', async (t) => {
  const app = Fastify()
  await app.register(rtCore, { broadcastKey: 'key', broadcast: { bodyLimit: 8 * 1024 * 1024 } })
  t.teardown(() => app.close())
  const post = async (payload: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/_broadcast', headers: { authorization: 'Bearer key' }, payload })).statusCode
  const statuses = new Set<number>()
  for (const text of texts) {
    const asString = JSON.stringify(text)
    for (const body of [
      text,
      `{"stream":"s","data":${asString}}`,
      `{"stream":${asString},"data":"1"}`,
      `{"stream":"s","data":"1","meta":${text}}`,
      `{"stream":"s","data":"1","meta":{"broadcast_type":${asString}}}`,
      `[${text}]`
    ]) {
      const status = await post(body)
      statuses.add(status)
      t.ok([201, 400].includes(status), `status ${status} for a body of ${body.length} characters`)
    }
  }
  t.equal(await post(`{"stream":${JSON.stringify(hugeName(900 * 1024))},"data":"1"}`), 400, 'a 900 KB stream name')
  t.equal(await post(`[${manyLines('{"stream":"s","data":"1"}', 10_000).replace(/\n/g, ',')}]`), 413, '10,000 publications')
  t.same([...statuses].sort(), [201, 400])
  const history = await app.rt.broker.history('s', { since: 0 })
  t.ok(history.messages.length > 0)
  for (const message of history.messages) {
    JSON.parse(encodeServerMessage(broadcastReply('{"channel":"C"}', message)))
  }
  t.pass(`all ${history.messages.length} accepted messages can be written out`)
  t.equal(await post('{"stream":"s","data":"fine"}'), 201)
})

t.test('hub commands: every field gets every hostile shape; the session goes on and saves', async (t) => {
  const errors: unknown[] = []
  const { hub, store } = makeHub(t, { publicStreams: true, logger: { error: (...args: unknown[]) => errors.push(args), warn: () => undefined } })
  const sink = new RecordingSink()
  const connected = await hub.connect(request(), sink)
  if (!('session' in connected)) throw new Error('not connected')
  const { session } = connected
  const identifier = JSON.stringify({ channel: '$pubsub', stream_name: 'ok' })
  t.same(await session.handle({ command: 'subscribe', identifier }), { ok: true })
  for (const text of texts) {
    const asString = JSON.stringify(text)
    const lines = [
      text,
      `{"command":"subscribe","identifier":${asString}}`,
      `{"command":"subscribe","identifier":${JSON.stringify(`{"channel":"$pubsub","stream_name":"s","p":${text}}`)}}`,
      `{"command":"subscribe","identifier":${JSON.stringify(`{"channel":"$pubsub","stream_name":${asString}}`)}}`,
      `{"command":"history","identifier":${JSON.stringify(identifier)},"history":${text}}`,
      `{"command":"message","identifier":${JSON.stringify(identifier)},"data":${asString}}`,
      `{"command":"message","identifier":${JSON.stringify(identifier)},"data":${JSON.stringify(`{"action":"x","p":${text}}`)}}`
    ]
    for (const line of lines) {
      const result = await session.handle(line)
      t.type(result.ok, 'boolean')
    }
  }
  const positions = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`s${i}`, { offset: 1, epoch: 'E' }]))
  t.match(await session.handle({ command: 'history', identifier, history: { streams: positions } }), { ok: false, status: 413 })
  t.match(parseJsonl(manyLines('{"command":"pong"}', 10_000)).at(-1), { result: { ok: false, status: 413 } })
  t.same(errors, [], 'nothing failed inside the hub')
  t.ok(await store.get(session.sid), 'the session is saved')
  t.ok(Object.keys((await store.get(session.sid))!.subscriptions).includes(identifier))
})
