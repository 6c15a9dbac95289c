import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'
import type { DataMessage, Outgoing } from '@rt/core'

t.test('ChatChannel: rooms, speak, rejection of bad room names', async (t) => {
  const { app } = await buildApp({ ...configFromEnv({}), port: 0 })
  await app.ready()
  t.teardown(() => app.close())
  const received: unknown[] = []
  const sink = { send: (o: Outgoing) => received.push(o.message) }
  const result = await app.rt.hub.connect({ headers: {} } as never, sink)
  if (!('session' in result)) throw new Error('rejected')
  const identifier = '{"channel":"ChatChannel","room":"lobby"}'
  await result.session.handle({ command: 'subscribe', identifier })
  await result.session.handle({ command: 'message', identifier, data: '{"action":"speak","user":"ann","text":"hi"}' })
  await result.session.handle({ command: 'message', identifier, data: '{"action":"speak","text":""}' })
  await result.session.handle({ command: 'message', identifier, data: '{"action":"speak","text":5}' })
  await result.session.handle({ command: 'message', identifier, data: '{"action":"speak","text":"anon"}' })
  const data = received.filter((m): m is DataMessage => !('type' in (m as object)))
  t.same(data.map((m) => m.message), [{ user: 'ann', text: 'hi' }, { user: 'anonymous', text: 'anon' }])
  t.equal(data[0]!.stream_id, 'chat_lobby')
  received.length = 0
  await result.session.handle({ command: 'subscribe', identifier: '{"channel":"ChatChannel","room":"no spaces"}' })
  await result.session.handle({ command: 'subscribe', identifier: '{"channel":"ChatChannel"}' })
  t.same(received.map((m) => (m as { type: string }).type), ['reject_subscription', 'reject_subscription'])
  await result.session.close()
})
