import { createCable, type Cable, type Channel } from '@anycable/core'
import { SignJWT } from 'jose'
import t from 'tap'
import { FAST, connectTo, payloads, poll, pubsub, serve, until } from './helpers.js'
import { AnyCableLongPollingTransport } from './anycable-sdk-transport.js'

const JWT_SECRET = 'sdk-jwt-secret'

/** A token made by jose (not by rt): AnyCable's format, the identifiers JSON in `ext`. */
const tokenFor = (user: string, exp = Math.floor(Date.now() / 1000) + 600): Promise<string> =>
  new SignJWT({ ext: JSON.stringify({ user }) }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(JWT_SECRET))

async function cableFor(t: { teardown(fn: () => unknown): void }, url: string, user: string, token?: string): Promise<Cable> {
  const transport = new AnyCableLongPollingTransport(url, { cooldown: 50, sendBuffer: 20, pingInterval: 1000 })
  transport.setToken(token ?? (await tokenFor(user)))
  const cable = createCable({ transport, protocol: 'actioncable-v1-ext-json', logLevel: 'error' })
  t.teardown(() => cable.disconnect())
  return cable
}

/** The presence events a channel got, as `join:<id>` / `leave:<id>`. */
function presenceEvents(channel: Channel): string[] {
  const events: string[] = []
  channel.on('presence', (event) => {
    const { type, id } = event as { type: string; id: string }
    // The SDK also emits the answers of `info()` here.
    if (type === 'join' || type === 'leave') events.push(`${type}:${id}`)
  })
  return events
}

t.test("AnyCable's SDK over long polling: JWT, presence", async (t) => {
  const { app, url } = await serve(t, { ...FAST, keepaliveTimeout: 1.5 }, {
    jwtSecret: JWT_SECRET,
    jwtForce: true,
    presenceTtl: 3,
    channels: { Who: { subscribed: (ctx) => ctx.transmit({ identity: ctx.identity }) } }
  })
  const alice = await cableFor(t, url, 'alice')
  const bob = await cableFor(t, url, 'bob')

  const who = alice.subscribeTo('Who')
  const identities: unknown[] = []
  who.on('message', (message) => identities.push(message))
  await who.ensureSubscribed()
  await until(() => identities.length > 0, 'the identity transmission')
  t.same(identities, [{ identity: { user: 'alice' } }], 'the JWT made by jose identifies the user as ctx.identity')

  const roomA = alice.streamFrom('room')
  const roomB = bob.streamFrom('room')
  const seenByA: unknown[] = []
  const seenByB: unknown[] = []
  roomA.on('message', (message) => seenByA.push(message))
  roomB.on('message', (message) => seenByB.push(message))
  const presenceA = presenceEvents(roomA)
  const presenceB = presenceEvents(roomB)
  await roomA.ensureSubscribed()
  await roomB.ensureSubscribed()

  await roomA.presence.join('alice', { name: 'Alice' })
  await until(() => presenceB.includes('join:alice'), "alice's join, at bob's")
  await roomB.presence.join('bob', { name: 'Bob' })
  await until(() => presenceA.includes('join:bob'), "bob's join, at alice's")
  t.same(await roomA.presence.info(), { alice: { name: 'Alice' }, bob: { name: 'Bob' } }, 'presence.info() returns both')

  // Each whisper is sent once; whichever of its polls the other client is between, it arrives once.
  for (let n = 1; n <= 3; n++) await roomB.whisper({ typing: 'bob', n })
  await until(() => seenByA.length >= 3, 'the whispers')
  await app.rt.publish('room', { marker: true })
  await until(() => seenByA.length >= 4 && seenByB.length >= 1, 'the marker broadcast, at both')
  t.same(seenByA, [{ typing: 'bob', n: 1 }, { typing: 'bob', n: 2 }, { typing: 'bob', n: 3 }, { marker: true }], 'each whisper reaches the other client once, in order')
  t.same(seenByB, [{ marker: true }], 'and never the sender')

  await roomB.presence.leave()
  await until(() => presenceA.includes('leave:bob'), "bob's leave, at alice's")
  t.same(await roomA.presence.info(), { alice: { name: 'Alice' } }, 'the leave is seen by the other')

  // Session end: a third client joins, then goes away; its record expires one presence TTL after its session.
  const carol = await cableFor(t, url, 'carol')
  const roomC = carol.streamFrom('room')
  await roomC.ensureSubscribed()
  await roomC.presence.join('carol', {})
  await until(() => presenceA.includes('join:carol'), "carol's join, at alice's")
  carol.disconnect()
  // Her keepalive (1.5 s) and her record's presence TTL (3 s) run out first: a longer guard than `until`'s.
  for (let i = 0; i < 1000 && !presenceA.includes('leave:carol'); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(await roomA.presence.info(), { alice: { name: 'Alice' } }, 'session end is seen by the other')
  t.same(presenceA, ['join:alice', 'join:bob', 'leave:bob', 'join:carol', 'leave:carol'], 'every presence event reaches the SDK once, as channel "presence" events')

  // Remote disconnect: the broadcaster names bob's identifiers; only bob's session ends.
  const disconnects: Array<{ reason?: string }> = []
  // reconnect: false closes the cable (its 'close' event), as the SDK does for any such disconnect.
  bob.on('close', (event) => disconnects.push(event as { reason?: string }))
  const response = await fetch(url.replace('/lp', '/_broadcast'), {
    method: 'POST',
    headers: { authorization: 'Bearer key' },
    body: JSON.stringify({ command: 'disconnect', payload: { identifier: JSON.stringify({ user: 'bob' }), reconnect: false } })
  })
  t.equal(response.status, 201)
  await until(() => disconnects.length > 0, "bob's disconnect")
  t.match(disconnects[0], { reason: 'remote' })
  t.equal(bob.state, 'closed', 'bob does not reconnect')
  t.equal(alice.state, 'connected', 'alice stays')
  seenByA.length = 0
  await app.rt.publish('room', { still: 'here' })
  await until(() => seenByA.length > 0, 'a broadcast after the disconnect')
  t.same(seenByA, [{ still: 'here' }])
})

t.test('long polling: an expired token is refused with token_expired; none at all with jwtForce', async (t) => {
  const { url } = await serve(t, FAST, { jwtSecret: JWT_SECRET, jwtForce: true })
  const expired = await fetch(`${url}?jid=${await tokenFor('late', Math.floor(Date.now() / 1000) - 10)}`, { method: 'POST' })
  t.equal(expired.status, 401)
  t.equal(await expired.text(), '{"type":"disconnect","reason":"token_expired","reconnect":false}\n')
  const response = await fetch(url, { method: 'POST' })
  t.equal(response.status, 401)
  t.equal(await response.text(), '{"type":"disconnect","reason":"unauthorized","reconnect":false}\n')
})

t.test('long polling: a whisper reaches the other subscriber, never the sender', async (t) => {
  const { app, url } = await serve(t, FAST, {})
  const a = await connectTo(url, ['room'])
  const b = await connectTo(url, ['room'])
  const held = poll(url, a.id)
  await until(() => app.rt.hub.listeners('room') === 1, "a's poll held")
  const sent = await poll(url, b.id, JSON.stringify({ command: 'whisper', identifier: pubsub('room'), data: { typing: 1 } }))
  t.equal(sent.status, 200)
  t.same(payloads(sent.lines), [], 'not back to the sender')
  t.same(payloads((await held).lines), [{ typing: 1 }])
})
