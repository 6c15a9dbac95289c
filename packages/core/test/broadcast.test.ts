import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import type { Broker, StreamMessage } from '../src/broker.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { rtCore } from '../src/plugin.js'
import type { RtCoreOptions } from '../src/options.js'
import { deriveBroadcastKey } from '../src/signing.js'

async function start(t: Test, options: RtCoreOptions = { broadcastKey: 'key' }): Promise<{ app: FastifyInstance; url: string; received: StreamMessage[] }> {
  const app = Fastify()
  await app.register(rtCore, options)
  const received: StreamMessage[] = []
  app.rt.broker.subscribe('chat_1', (m) => received.push(m))
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, url: `${address}/_broadcast`, received }
}

function post(url: string, body: string, headers: Record<string, string> = { authorization: 'Bearer key' }): Promise<Response> {
  return fetch(url, { method: 'POST', body, headers })
}

t.test('single and array publications with meta', async (t) => {
  const { url, received, app } = await start(t)
  let res = await post(url, JSON.stringify({ stream: 'chat_1', data: '{"text":"hi"}' }))
  t.equal(res.status, 201)
  t.equal(await res.text(), '')
  res = await post(url, JSON.stringify([
    { stream: 'chat_1', data: 'plain <b>html</b>' },
    { stream: 'chat_1', data: '"quoted"', meta: { transient: true, exclude_socket: 'sid1' } }
  ]))
  t.equal(res.status, 201)
  t.same(received.map((m) => m.data), [{ text: 'hi' }, 'plain <b>html</b>', 'quoted'])
  t.same(received.map((m) => m.offset), [1, 2, 0])
  t.equal(received[2]!.meta?.exclude_socket, 'sid1')
  t.same(received.map((m) => m.meta?.json_string), [true, undefined, undefined], 'marked when the string held JSON that parsed to a non-string')
  const history = await app.rt.broker.history('chat_1', { since: 0 })
  t.equal(history.messages.length, 2, 'the transient message is not in history')
})


t.test('each bad input is a clear 4xx and the next good broadcast is delivered', async (t) => {
  const { url, received } = await start(t)
  const cases: Array<[string, string, Record<string, string> | undefined, number, RegExp]> = [
    ['no key', '{"stream":"chat_1","data":"1"}', {}, 401, /broadcast key/],
    ['wrong key', '{"stream":"chat_1","data":"1"}', { authorization: 'Bearer nope' }, 401, /broadcast key/],
    ['not bearer', '{"stream":"chat_1","data":"1"}', { authorization: 'Basic key' }, 401, /broadcast key/],
    ['broken JSON', '{"stream":', undefined, 400, /not valid JSON/],
    ['empty body', '', undefined, 400, /not valid JSON/],
    ['missing stream', '{"data":"1"}', undefined, 400, /stream/],
    ['empty stream', '{"stream":"","data":"1"}', undefined, 400, /stream/],
    ['non-string data', '{"stream":"chat_1","data":{"a":1}}', undefined, 400, /data/],
    ['bad meta', '{"stream":"chat_1","data":"1","meta":{"transient":"yes"}}', undefined, 400, /meta\.transient/],
    ['not an object', '42', undefined, 400, /expected an object/],
    ['empty array', '[]', undefined, 400, /must not be empty/],
    ['bad array item', '[{"stream":"chat_1","data":"1"},{"stream":"chat_1"}]', undefined, 400, /publication 1: data/]
  ]
  for (const [name, body, headers, status, reason] of cases) {
    const res = await post(url, body, headers)
    t.equal(res.status, status, name)
    t.match((await res.json() as { message: string }).message, reason, name)
  }
  t.equal(received.length, 0, 'nothing was published, not even the valid first item of a bad batch')
  const big = await post(url, JSON.stringify({ stream: 'chat_1', data: 'x'.repeat(1024 * 1024 + 10) }))
  t.equal(big.status, 413)
  t.match(await big.json(), { code: 'FST_ERR_CTP_BODY_TOO_LARGE' })
  const wrongMethod = await fetch(url, { method: 'GET' })
  t.equal(wrongMethod.status, 405)
  t.equal(wrongMethod.headers.get('allow'), 'POST')
  const noType = await post(url, '{"stream":"chat_1","data":"ok"}', { authorization: 'Bearer key', 'content-type': 'application/x-www-form-urlencoded' })
  t.equal(noType.status, 201, 'any content type is read as text, as curl -d sends it')
  t.same(received.map((m) => m.data), ['ok'])
})

t.test('closed without a key or hook', async (t) => {
  const { url, received } = await start(t, {})
  const res = await post(url, '{"stream":"chat_1","data":"1"}', {})
  t.equal(res.status, 401)
  t.equal(received.length, 0)
})

t.test('key derived from the secret, and an authorize hook', async (t) => {
  const { url } = await start(t, { secret: 's3cret', broadcast: { authorize: (request) => request.headers['x-trusted'] === 'yes' } })
  t.equal((await post(url, '{"stream":"a","data":"1"}', { authorization: `Bearer ${deriveBroadcastKey('s3cret')}` })).status, 201)
  t.equal((await post(url, '{"stream":"a","data":"1"}', { 'x-trusted': 'yes' })).status, 201)
  t.equal((await post(url, '{"stream":"a","data":"1"}', { 'x-trusted': 'no' })).status, 401)
})

t.test('a broker outage is a 503, not a silent drop', async (t) => {
  const broker = new MemoryBroker()
  const { url } = await start(t, { broker, broadcastKey: 'key' })
  await broker.close()
  const res = await post(url, '{"stream":"a","data":"1"}')
  t.equal(res.status, 503)
  t.equal(res.headers.get('retry-after'), '1')
  t.same(await res.json(), { error: 'unavailable', message: 'temporarily unavailable, retry shortly' }, 'no internal detail')
})

t.test('unexpected broker errors are 500s', async (t) => {
  const broker = new MemoryBroker()
  t.teardown(() => broker.close())
  const failing: Broker = Object.assign(Object.create(broker) as Broker, {
    publish: async () => { throw new Error('boom') }
  })
  const { url } = await start(t, { broker: failing, broadcastKey: 'key' })
  const res = await post(url, '{"stream":"a","data":"1"}')
  t.equal(res.status, 500)
})
