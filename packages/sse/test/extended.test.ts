import { SignJWT } from 'jose'
import t from 'tap'
import { answer, json, open, startApp, subscribed, type EventStream } from './helpers.js'

const room = JSON.stringify({ channel: '$pubsub', stream_name: 'room' })
const subscribe = (extra: Record<string, unknown> = {}): string => JSON.stringify({ command: 'subscribe', identifier: room, ...extra })

async function sidOf(stream: EventStream): Promise<string> {
  return (json(await stream.nextMatching((event) => event.event === 'welcome')) as { sid: string }).sid
}

t.test('SSE POST sessions: presence and whispers through X-RT-SID commands', async (t) => {
  const { base } = await startApp(t)
  const a = await open(`${base}/events`, { method: 'POST', body: subscribe({ presence: { id: 'alice', info: { n: 1 } } }) })
  const aSid = await sidOf(a)
  const b = await open(`${base}/events`, { method: 'POST', body: subscribe() })
  const bSid = await sidOf(b)
  await b.nextMatching((event) => event.event === 'confirm_subscription')
  const send = (sid: string, command: Record<string, unknown>) =>
    answer(`${base}/events`, { method: 'POST', headers: { 'x-rt-sid': sid }, body: JSON.stringify({ identifier: room, ...command }) })
  t.equal((await send(bSid, { command: 'join', presence: { id: 'bob' } })).status, 202)
  const joined = await a.nextMatching((event) => event.event === 'presence' && (json(event) as { message: { id?: string } }).message.id === 'bob')
  t.same(json(joined), { type: 'presence', identifier: room, message: { type: 'join', id: 'bob' } })
  await send(bSid, { command: 'presence' })
  const info = await b.nextMatching((event) => event.event === 'presence' && (json(event) as { message: { type: string } }).message.type === 'info')
  t.same((json(info) as { message: unknown }).message, { type: 'info', total: 2, records: [{ id: 'alice', info: { n: 1 } }, { id: 'bob' }] })
  await send(aSid, { command: 'whisper', data: { typing: true } })
  const whispered = await b.nextMatching((event) => event.event === 'message')
  t.same(json(whispered), { identifier: room, message: { typing: true } })
  await send(bSid, { command: 'leave' })
  const left = await a.nextMatching((event) => event.event === 'presence' && (json(event) as { message: { type: string } }).message.type === 'leave')
  t.same((json(left) as { message: unknown }).message, { type: 'leave', id: 'bob' })
  t.notOk(a.events.some((event) => event.event === 'message'), 'the whisper did not come back to its sender')
  a.close()
  b.close()
})

t.test('SSE: ?pi= and ?ptp= set the ping interval and precision per connection; bad values are 400', async (t) => {
  const { base } = await startApp(t, {}, { pingInterval: 600_000 })
  const stream = await subscribed(`${base}/events?stream=room&pi=1&ptp=ms`)
  const ping = await stream.nextMatching((event) => event.event === 'ping')
  const { message } = json(ping) as { message: number }
  t.ok(message > 1_000_000_000_000, 'milliseconds')
  stream.close()
  const ns = await subscribed(`${base}/events?stream=room&pi=1&ptp=ns`)
  t.ok((json(await ns.nextMatching((event) => event.event === 'ping')) as { message: number }).message > 1e18, 'nanoseconds')
  ns.close()
  const bad = await answer(`${base}/events?stream=room&pi=soon`)
  t.equal(bad.status, 400)
  t.match(bad.body, /pi/)
  t.equal((await answer(`${base}/events?ptp=us`, { method: 'POST', body: subscribe() })).status, 400, 'POST streams take them too')
})

t.test('SSE: JWT identification by ?jid= or X-JID; token_expired says so in its 401', async (t) => {
  const secret = new TextEncoder().encode('sse-jwt')
  const token = (exp: number) => new SignJWT({ ext: JSON.stringify({ user: 'u1' }) }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(secret)
  const now = Math.floor(Date.now() / 1000)
  const { base } = await startApp(t, {
    jwtSecret: 'sse-jwt',
    jwtForce: true,
    channels: { Me: { subscribed: (ctx) => ctx.transmit(ctx.identity) } }
  })
  const stream = await subscribed(`${base}/events?channel=Me&jid=${await token(now + 60)}`)
  t.same(json(await stream.nextMatching((event) => event.event === 'message')), { user: 'u1' })
  stream.close()
  const byHeader = await open(`${base}/events`, { method: 'POST', headers: { 'x-jid': await token(now + 60) }, body: JSON.stringify({ command: 'subscribe', identifier: '{"channel":"Me"}' }) })
  t.equal(byHeader.status, 200)
  byHeader.close()
  const expired = await fetch(`${base}/events?channel=Me&jid=${await token(now - 10)}`)
  t.equal(expired.status, 401)
  t.equal(await expired.text(), '{"type":"disconnect","reason":"token_expired","reconnect":false}\n')
  const missing = await answer(`${base}/events?channel=Me`)
  t.equal(missing.status, 401)
  t.equal(missing.body, '', 'jwtForce: no token is a plain 401')
})
