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

/**
 * The presence state as the server has it now: `reset()` drops the SDK's cached
 * state so `info()` asks again. Events are not relied on alone, because rt's
 * long polling keeps no session between two polls, so a transient message
 * (presence event, whisper) published in that gap is not delivered.
 */
async function presenceNow(channel: Channel): Promise<Record<string, unknown>> {
  channel.presence.reset()
  return (await channel.presence.info()) ?? {}
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
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
  const presenceA: unknown[] = []
  roomA.on('message', (message) => seenByA.push(message))
  roomB.on('message', (message) => seenByB.push(message))
  roomA.on('presence', (event) => presenceA.push(event))
  await roomA.ensureSubscribed()
  await roomB.ensureSubscribed()

  await roomA.presence.join('alice', { name: 'Alice' })
  await roomB.presence.join('bob', { name: 'Bob' })
  await eventually(async () => Object.keys(await presenceNow(roomA)).length === 2, 'both records')
  t.same(await presenceNow(roomA), { alice: { name: 'Alice' }, bob: { name: 'Bob' } }, 'presence.info() returns both')

  await eventually(async () => {
    await roomB.whisper({ typing: 'bob' })
    await new Promise((resolve) => setTimeout(resolve, 100))
    return seenByA.length > 0
  }, 'the whisper')
  t.same(seenByA[0], { typing: 'bob' }, 'the whisper reaches the other client')
  await app.rt.publish('room', { marker: true })
  await until(() => seenByB.some((m) => (m as { marker?: boolean }).marker === true), 'the marker broadcast')
  t.same(seenByB, [{ marker: true }], 'and not the sender (it got the later broadcast only)')

  await roomB.presence.leave()
  await eventually(async () => !('bob' in (await presenceNow(roomA))), "bob's leave")
  t.same(await presenceNow(roomA), { alice: { name: 'Alice' } }, 'the leave is seen by the other')

  // Session end: a third client joins, then goes away; its record expires one presence TTL after its session.
  const carol = await cableFor(t, url, 'carol')
  const roomC = carol.streamFrom('room')
  await roomC.ensureSubscribed()
  await roomC.presence.join('carol', {})
  await eventually(async () => 'carol' in (await presenceNow(roomA)), "carol's join")
  carol.disconnect()
  await eventually(async () => !('carol' in (await presenceNow(roomA))), "carol's record, gone after her session ended")
  t.same(await presenceNow(roomA), { alice: { name: 'Alice' } }, 'session end is seen by the other')
  t.ok(presenceA.length > 0, 'presence events reach the SDK as channel "presence" events')

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
