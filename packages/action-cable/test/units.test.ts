import Fastify from 'fastify'
import t from 'tap'
import { rtCore, type ChannelSource } from '@rt/core'
import { rtActionCable, RtActionCableOptionsSchema } from '../src/index.js'
import { resolveOptions } from '../src/options.js'

t.test('options are checked at register, with the bad one named', async (t) => {
  t.throws(() => resolveOptions({}), /invalid options: \/url/)
  t.throws(() => resolveOptions({ url: 'http://rails/cable' }), /\/url/, 'a ws:// or wss:// URL')
  t.throws(() => resolveOptions({ url: 'ws://rails/cable', forwardHeaders: ['bad header'] }), /forwardHeaders/)
  t.throws(() => resolveOptions({ url: 'ws://rails/cable', copyOrigin: true }), /invalid options/, 'unknown options are refused')
  t.throws(() => resolveOptions(undefined), /invalid options/)
  const resolved = resolveOptions({ url: 'wss://rails/cable', forwardHeaders: ['Cookie', 'Authorization'] })
  t.same(resolved.forwardHeaders, ['cookie', 'authorization'], 'header names matched case-insensitively')
  t.equal(resolved.origin, undefined, 'no Origin unless configured: never copied from the client')
  t.equal(resolved.pingInterval, 3000)
  t.same(resolveOptions({ url: 'ws://x/cable' }).forwardHeaders, ['cookie'])
  t.ok(RtActionCableOptionsSchema.properties.url)
})

t.test('register: @rt/core first, one channel source per hub', async (t) => {
  const bare = Fastify()
  await t.rejects(async () => { await bare.register(rtActionCable, { url: 'ws://127.0.0.1:1/cable' }).ready() }, /@rt\/core/)
  const app = Fastify()
  await app.register(rtCore)
  await app.register(rtActionCable, { url: 'ws://127.0.0.1:1/cable' })
  await app.ready()
  t.teardown(() => app.close())
  const other: ChannelSource = { channel: () => undefined }
  t.throws(() => app.rt.hub.useChannelSource(other), /already installed/)
  t.equal(app.rt.hub.channelSource, app.rtActionCable)
})

t.test('an unreachable upstream refuses the connection (401), leaving no socket', async (t) => {
  const app = Fastify()
  await app.register(rtCore)
  await app.register(rtActionCable, { url: 'ws://127.0.0.1:1/cable', connectTimeout: 500 })
  const { rtLongPoll } = await import('@rt/long-poll')
  await app.register(rtLongPoll)
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const response = await fetch(`${base}/lp`, { method: 'POST', headers: { cookie: 'user=ann' }, body: '' })
  t.equal(response.status, 401)
  t.equal(app.rtActionCable.socketCount, 0)
})
