import Fastify from 'fastify'
import t from 'tap'
import { disconnectMessage, rtCore } from '@rt/core'
import { formatCursor, parseResume } from '../src/cursor.js'
import { encodeGetFrame, encodeGetHead, encodePostFrame, serialize } from '../src/encoder.js'
import { MAX_SHARED_SETTINGS, connectionSettings } from '../src/handler.js'
import { rtSse } from '../src/index.js'
import { resolveOptions } from '../src/options.js'
import { parseQuery } from '../src/query.js'

t.test('encoder: field order, multi-line data, unsafe fields', async (t) => {
  t.equal(serialize({ event: 'e', data: 'a\r\nb\rc\nd', id: '1/e/s', retry: 5 }), 'event: e\ndata: a\ndata: b\ndata: c\ndata: d\nid: 1/e/s\nretry: 5\n\n')
  t.equal(serialize({ data: '' }), 'data: \n\n')
  t.equal(serialize({ event: 'bad\nevent', data: 'x', id: 'bad\0id' }), 'data: x\n\n', 'CR, LF and NUL never reach event: or id:')
  const broadcast = { identifier: '{"channel":"$pubsub","stream_name":"s"}', message: { a: 1 }, stream_id: 's', epoch: 'ep', offset: 3 }
  t.equal(encodeGetFrame(broadcast).toString(), 'data: {"a":1}\nid: 3/ep/s\n\n')
  t.equal(encodeGetHead(broadcast).toString(), 'data: {"a":1}\n')
  t.equal(encodePostFrame(broadcast).toString(), `data: ${JSON.stringify(broadcast)}\nid: 3/ep/s\n\n`)
  t.equal(encodeGetFrame({ identifier: 'i', message: 'x', stream_id: 'line\nbreak', epoch: 'e', offset: 1 }).toString(), 'data: x\n\n', 'an id that cannot be written is left out')
  t.equal(encodeGetFrame({ identifier: 'i', message: 'x', stream_id: 's', epoch: '', offset: 1 }).toString(), 'data: x\n\n')
  t.equal(encodeGetFrame({ identifier: 'i', message: 'x', stream_id: 's', epoch: 'e', offset: 0 }).toString(), 'data: x\n\n')
  t.equal(encodeGetFrame({ identifier: 'i', message: undefined }).toString(), 'data: null\n\n')
  t.equal(encodeGetFrame({ type: 'confirm_subscription', identifier: 'i' }).toString(), 'event: confirm_subscription\ndata: {"type":"confirm_subscription","identifier":"i"}\n\n')
  t.equal(encodeGetFrame(disconnectMessage('remote', false)).toString(), 'event: disconnect\ndata: {"type":"disconnect","reason":"remote","reconnect":false}\nretry: 31536000000\n\n')
  t.equal(encodePostFrame(disconnectMessage('server_restart', true)).toString(), 'event: disconnect\ndata: {"type":"disconnect","reason":"server_restart","reconnect":true}\n\n')
})

t.test('cursor: format and parse', async (t) => {
  const cursor = formatCursor(new Map([['b/2', { offset: 4, epoch: 'E,2' }], ['a', { offset: 12, epoch: 'Yx3b_Q' }]]))
  t.equal(cursor, '~12/Yx3b_Q/a,4/E%2C2/b%2F2', 'sorted by stream, epoch and stream percent-encoded')
  t.same(parseResume(cursor), { ok: true, streams: { a: { offset: 12, epoch: 'Yx3b_Q' }, 'b/2': { offset: 4, epoch: 'E,2' } } })
  t.same(parseResume('12/Yx3b_Q/chat/42'), { ok: true, streams: { 'chat/42': { offset: 12, epoch: 'Yx3b_Q' } } }, 'AnyCable ids: the stream may hold "/"')
  t.same(parseResume('12'), { ok: true, streams: {} })
  t.same(parseResume('12/e'), { ok: true, streams: {} })
  t.match(parseResume('-1/e/s'), { ok: false, error: /offset/ })
  t.match(parseResume('1234567890123456/e/s'), { ok: false }, 'offsets stay exact JSON numbers')
  t.match(parseResume('1/e/'), { ok: false })
  t.match(parseResume('~'), { ok: false })
  t.match(parseResume('~1/e/s,'), { ok: false })
  t.match(parseResume('~x/e/s'), { ok: false })
  t.match(parseResume('~1/%zz/s'), { ok: false })
  const proto = parseResume('1/e/__proto__')
  t.ok(proto.ok && Object.hasOwn(proto.streams, '__proto__'), 'a stream named __proto__ is just a stream')
})

t.test('query: validation and identifiers', async (t) => {
  t.same(parseQuery({ stream: ['a', 'b', 'a'], raw: 'Yes' }), { ok: true, request: { identifiers: ['{"channel":"$pubsub","stream_name":"a"}', '{"channel":"$pubsub","stream_name":"b"}'], historySince: undefined, raw: false, lastEventId: undefined } })
  t.match(parseQuery({ stream: 's', history_since: '1700000000', last_event_id: '1/e/s', jid: 'token' }), { ok: true, request: { historySince: 1700000000, lastEventId: '1/e/s' } })
  t.match(parseQuery({ stream: Array.from({ length: 65 }, (_, i) => `s${i}`) }), { ok: false, error: /stream/ })
  t.match(parseQuery({ raw: ['1', '1'], stream: 's' }), { ok: false, error: /raw/ })
  t.match(parseQuery({}), { ok: false, error: /no channel provided/ })
  t.match(parseQuery({ stream: ['', ''] }), { ok: false, error: /no channel provided/ })
})

t.test('options: defaults and validation at registration', async (t) => {
  t.same(resolveOptions({}), { path: '/events', pingInterval: 3000, maxBufferedBytes: 1048576, bodyLimit: 65536, allowedOrigins: undefined, remoteCommands: true })
  for (const [options, message] of [
    [{ path: 'events' }, /path/],
    [{ path: '/events/' }, /path/],
    [{ path: '/' }, /path/],
    [{ path: '/a b' }, /path/],
    [{ pingInterval: 0 }, /pingInterval/],
    [{ pingInterval: 1.5 }, /pingInterval/],
    [{ maxBufferedBytes: -1 }, /maxBufferedBytes/],
    [{ bodyLimit: '1' }, /bodyLimit/],
    [{ allowedOrigins: 'example.com' }, /allowedOrigins/],
    [{ remoteCommands: 'yes' }, /remoteCommands/]
  ] as const) {
    t.throws(() => resolveOptions(options as never), { message: /^@rt\/sse: / }, JSON.stringify(options))
    t.throws(() => resolveOptions(options as never), { message }, JSON.stringify(options))
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(rtCore)
  await t.rejects(async () => { await app.register(rtSse, { pingInterval: -5 }) }, { message: '@rt/sse: pingInterval must be a positive integer' })
})

t.test('registration needs @rt/core; a custom path works', async (t) => {
  const bare = Fastify()
  t.teardown(() => bare.close())
  await t.rejects(async () => { await bare.register(rtSse) }, /@rt\/core/)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(rtCore, { publicStreams: true })
  await app.register(rtSse, { path: '/cable/sse' })
  await app.ready()
  t.ok(app.hasRoute({ method: 'GET', url: '/cable/sse' }))
  t.notOk(app.hasRoute({ method: 'GET', url: '/events' }))
})

t.test('one ping frame per second, shared by every connection', async (t) => {
  const { pingFrame } = await import('../src/connection.js')
  const first = pingFrame(1_700_000_000_100)
  t.equal(pingFrame(1_700_000_000_900), first, 'the same second: the same Buffer')
  const next = pingFrame(1_700_000_001_000)
  t.not(next, first)
  t.equal(next.toString(), 'event: ping\ndata: {"type":"ping","message":1700000001}\n\n')
})

t.test('connection settings: one frozen object per set of options, the cache bounded', async (t) => {
  const settings = connectionSettings('get', false, 3000, 's', 1024)
  t.same(settings, { format: 'get', raw: false, pingInterval: 3000, pingPrecision: 's', maxBufferedBytes: 1024 })
  t.ok(Object.isFrozen(settings))
  t.equal(connectionSettings('get', false, 3000, 's', 1024), settings, 'equal options, the same object')
  t.not(connectionSettings('get', false, 4000, 's', 1024), settings)
  // Client-chosen intervals (`?pi=`) past the bound empty the cache instead of growing it.
  for (let i = 1; i <= MAX_SHARED_SETTINGS; i++) connectionSettings('get', false, i * 1000 + 1, 's', 1024)
  t.not(connectionSettings('get', false, 3000, 's', 1024), settings, 'made again once the cache was emptied')
  t.same(connectionSettings('get', false, 3000, 's', 1024), settings)
})
