import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { WebSocketServer } from 'ws'
import t from 'tap'
import { MemorySessionStore, rtCore, type ChannelSource } from '@rt/core'
import { rtActionCable, RtActionCableOptionsSchema } from '../src/index.js'
import { resolveOptions } from '../src/options.js'
import { HolderRecords } from '../src/holder.js'
import { UpstreamConnection } from '../src/upstream.js'
import { eventually } from './helpers.js'

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

t.test('a message in the same chunk right behind confirm_subscription belongs to the subscription; pings are not forwarded', async (t) => {
  // A stand-in upstream that writes the confirmation and a message in one TCP write (corked): the client parses both in one go.
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(server, 'listening')
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  server.on('connection', (socket) => {
    socket.send(JSON.stringify({ type: 'welcome' }))
    socket.on('message', (data) => {
      const { identifier } = JSON.parse(String(data)) as { identifier: string }
      const tcp = (socket as unknown as { _socket: import('node:net').Socket })._socket
      tcp.cork()
      socket.send(JSON.stringify({ identifier, type: 'confirm_subscription' }))
      socket.send(JSON.stringify({ identifier, message: { first: true } }))
      process.nextTick(() => tcp.uncork())
      // Later, on its own: tells the test that everything before it has been read.
      setTimeout(() => {
        // Action Cable's ping (every 3 s) is the socket's business, never a message of the subscription.
        socket.send(JSON.stringify({ type: 'ping', message: Math.floor(Date.now() / 1000) }))
        socket.send(JSON.stringify({ identifier, message: { last: true } }))
      }, 20)
    })
  })
  const { port } = server.address() as AddressInfo
  const messages: unknown[] = []
  const connection = new UpstreamConnection(resolveOptions({ url: `ws://127.0.0.1:${port}/cable` }), {}, {
    message: (_identifier, message) => messages.push(message),
    dropped: () => undefined,
    resubscribed: () => undefined,
    ended: () => undefined
  })
  t.teardown(() => connection.close())
  t.equal(await connection.open(), 'welcome')
  t.equal(await connection.subscribe('{"channel":"C"}'), true)
  await eventually(() => messages.length >= 2, 'the last message')
  t.same(messages, [{ first: true }, { last: true }], 'the message behind the confirmation, and no ping')
})

t.test('holder records: a take-over is a compare-and-set; the holder taken over cannot renew', async (t) => {
  const store = new MemorySessionStore()
  t.teardown(() => store.close())
  const a = new HolderRecords(store, 'a', 1000, 60_000)
  const b = new HolderRecords(store, 'b', 1000, 60_000)
  const c = new HolderRecords(store, 'c', 1000, 60_000)
  const lease = await a.create('u1')
  t.match(await b.read('u1'), { kind: 'held', holder: 'a' })
  await a.release('u1', lease)
  const free = await b.read('u1')
  t.match(free, { kind: 'free' })
  const won = await Promise.all([b.takeOver('u1', free.kind === 'free' ? free.lease : -1), c.takeOver('u1', free.kind === 'free' ? free.lease : -1)])
  t.equal(won.filter((l) => l !== undefined).length, 1, 'of two take-overs from one state, one wins')
  t.equal(await a.renew('u1', lease), false, 'the old holder cannot renew any more')
  const winner = won[0] !== undefined ? 'b' : 'c'
  t.match(await a.read('u1'), { kind: 'held', holder: winner })
  await (winner === 'b' ? b : c).end('u1', won.find((l) => l !== undefined)!, 'banned')
  t.same(await a.read('u1'), { kind: 'ended', reason: 'banned' })
  t.match(await a.read('missing'), { kind: 'free', lease: undefined })
  t.type(await a.takeOver('missing', undefined), 'number', 'a record gone from the store is written anew')
})
