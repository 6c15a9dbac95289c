import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'
import { startCable } from '../../../packages/action-cable/test/fixture/cable.mjs'

t.test('ACTION_CABLE_URL: the chat page\'s ChatChannel is the upstream Rails channel, through rt', async (t) => {
  const cable = await startCable()
  t.teardown(() => cable.stop())
  const config = configFromEnv({ ACTION_CABLE_URL: cable.url })
  t.same(config.actionCable, { url: cable.url, origin: cable.origin }, 'the Origin defaults to the upstream\'s own')
  const { app } = await buildApp({ ...config, port: 0 })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const identifier = JSON.stringify({ channel: 'ChatChannel', room: 'lobby' })
  const lines = (commands: unknown[]): string => commands.map((c) => JSON.stringify(c)).join('\n')
  const first = await fetch(`${base}/lp`, { method: 'POST', headers: { cookie: 'user=ann' }, body: lines([{ command: 'subscribe', identifier }]) })
  t.equal(first.status, 200)
  t.match(await first.text(), /confirm_subscription/)
  const id = first.headers.get('x-anycable-poll-id')!
  const spoken = await fetch(`${base}/lp`, {
    method: 'POST',
    headers: { 'x-anycable-poll-id': id },
    body: lines([{ command: 'message', identifier, data: JSON.stringify({ action: 'speak', text: 'hi from rt' }) }])
  })
  // The Rails channel answers with the cookie's user, not a `user` field of the data (which the JS ChatChannel would use).
  let text = await spoken.text()
  for (let i = 0; i < 10 && !text.includes('hi from rt'); i++) {
    text = await (await fetch(`${base}/lp`, { method: 'POST', headers: { 'x-anycable-poll-id': id }, body: '' })).text()
  }
  t.match(text, /"message":\{"user":"ann","text":"hi from rt"\}/)
  const anonymous = await fetch(`${base}/lp`, { method: 'POST', body: lines([{ command: 'subscribe', identifier }]) })
  t.equal(anonymous.status, 401, 'the upstream decides who connects')
})
