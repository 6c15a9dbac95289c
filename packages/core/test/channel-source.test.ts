import t from 'tap'
import { Hub, MemoryBroker, MemorySessionStore, type ChannelSource, type Outgoing, type Session } from '../src/index.js'

const request = { headers: {} } as never

function setup(source: ChannelSource): { hub: Hub; sent: unknown[]; sink: { send(o: Outgoing): void } } {
  const hub = new Hub({ broker: new MemoryBroker(), store: new MemorySessionStore(), channels: { Js: { subscribed: (ctx) => ctx.streamFrom('js') } } })
  hub.useChannelSource(source)
  const sent: unknown[] = []
  return { hub, sent, sink: { send: (o) => sent.push(o.message) } }
}

t.test('a channel source: unknown channels, open (state or 401), attached, closed, any action, state kept on restore', async (t) => {
  const events: string[] = []
  const performed: unknown[] = []
  let refuse = false
  const source: ChannelSource = {
    channel: (name) => name === 'Upstream' ? {
      subscribed: (ctx) => {
        events.push(`subscribed ${String(ctx.sourceState?.id)}`)
        ctx.streamFrom('up')
      },
      perform: (ctx, action, data) => { performed.push({ action, data, id: ctx.sourceState?.id }) }
    } : undefined,
    open: async (_request, sid) => {
      events.push('open')
      return refuse ? undefined : { id: `for-${sid}` }
    },
    attached: async (session: Session) => { events.push(`attached ${session.mode}`) },
    closed: async () => { events.push('closed') }
  }
  const { hub, sent, sink } = setup(source)
  t.equal(hub.channelSource, source)
  t.throws(() => hub.useChannelSource(source), /already installed/)

  const result = await hub.connect(request, sink)
  if (!('session' in result)) throw new Error('rejected')
  const { session } = result
  t.equal(session.state.sourceState?.id, `for-${session.sid}`, 'the source state is stored with the session')
  t.same(events, ['open', 'attached live'])

  t.same(await session.handle({ command: 'subscribe', identifier: '{"channel":"Js"}' }), { ok: true }, 'JS channels still work')
  t.same(await session.handle({ command: 'subscribe', identifier: '{"channel":"Upstream"}' }), { ok: true })
  t.same(await session.handle({ command: 'message', identifier: '{"channel":"Upstream"}', data: '{"action":"anything","x":1}' }), { ok: true })
  t.same(performed, [{ action: 'anything', data: { action: 'anything', x: 1 }, id: `for-${session.sid}` }], 'any action goes to perform')
  t.same(await session.handle({ command: 'subscribe', identifier: '{"channel":"Nope"}' }), { ok: false, error: 'unknown channel: Nope' })
  t.same(await session.handle({ command: 'message', identifier: '{"channel":"Js"}', data: '{"action":"x"}' }), { ok: false, error: 'unknown action: x' },
    'a JS channel without perform still refuses unknown actions')

  await session.close()
  t.ok(events.includes('closed'), 'closed is told')
  const restored = await hub.connect(request, sink, { restoreSid: session.sid })
  if (!('session' in restored)) throw new Error('rejected')
  t.equal(restored.session.state.sourceState?.id, `for-${session.sid}`, 'a restored session keeps its source state (open is not called again)')
  t.equal(events.filter((e) => e === 'open').length, 1)

  refuse = true
  t.same(await hub.connect(request, sink), { rejected: 'unauthorized' }, 'open refusing is a 401')
  t.ok(sent.length > 0)
  hub.close()
})

t.test('a failing source hook is logged, never a crash', async (t) => {
  const errors: string[] = []
  const hub = new Hub({ broker: new MemoryBroker(), store: new MemorySessionStore(), logger: { error: ((_o: unknown, m: string) => { errors.push(m) }) as never, warn: (() => undefined) as never } })
  hub.useChannelSource({
    channel: () => undefined,
    attached: async () => { throw new Error('boom') },
    closed: async () => { throw new Error('boom') }
  })
  const result = await hub.connect(request, { send: () => undefined })
  if (!('session' in result)) throw new Error('rejected')
  await result.session.close()
  t.same(errors, ['@rt/core: the channel source failed on an attached session', '@rt/core: the channel source failed on a closed session'])
  hub.close()
})

t.test('store records of rt itself ($rt: keys) are never restored or resumed as sessions', async (t) => {
  const store = new MemorySessionStore()
  const hub = new Hub({ broker: new MemoryBroker(), store })
  const record = { sid: '$rt:ac-holder:x', identity: { holder: 'p' }, subscriptions: {}, positions: {}, outbox: [], transport: {}, lease: 0, createdAt: 0 }
  await store.create(record, 10_000)
  const restored = await hub.connect(request, { send: () => undefined }, { restoreSid: record.sid })
  if (!('session' in restored)) throw new Error('rejected')
  t.equal(restored.restored, false, 'a new session, not the record')
  t.same(restored.session.state.identity, {})
  t.equal(await hub.resume(record.sid, { send: () => undefined }), undefined)
  t.ok(await store.get(record.sid), 'the record is untouched')
  await restored.session.close()
  hub.close()
  await store.close()
})

t.test('streamFrom with `from`: what was published while subscribed ran is delivered; a stream already read keeps its place', async (t) => {
  const broker = new MemoryBroker()
  const hub = new Hub({
    broker,
    store: new MemorySessionStore(),
    channels: {
      Late: {
        subscribed: async (ctx) => {
          const from = await broker.position('late')
          // Published after the position was read and before the subscription joins the stream (an upstream's confirmation travelling back).
          await broker.publish('late', { n: Number(ctx.params.n) })
          ctx.streamFrom('late', { from })
        }
      }
    }
  })
  t.teardown(() => hub.close())
  const sent: Array<Record<string, unknown>> = []
  const result = await hub.connect(request, { send: (o) => sent.push(o.message as unknown as Record<string, unknown>) })
  if (!('session' in result)) throw new Error('rejected')
  await result.session.handle({ command: 'subscribe', identifier: '{"channel":"Late","n":1}' })
  t.same(sent.filter((m) => 'message' in m).map((m) => m.message), [{ n: 1 }], 'the message published in subscribed() is delivered')
  await result.session.handle({ command: 'subscribe', identifier: '{"channel":"Late","n":2}' })
  // The stream is read already (its place is the session's, per stream): `from` changes nothing, nothing comes twice.
  t.same(sent.filter((m) => 'message' in m).map((m) => [m.identifier, m.message]), [
    ['{"channel":"Late","n":1}', { n: 1 }],
    ['{"channel":"Late","n":1}', { n: 2 }]
  ], 'a stream already read is not caught up again from a later `from`')
})
