import { SignJWT } from 'jose'
import t from 'tap'
import { createConsumer, type Consumer, type ConsumerOptions, type PresenceEvent } from '../src/index.js'
import type { TransportName } from '../src/types.js'
import { startServer, until } from './server.js'

function consumer(t: { teardown(fn: () => unknown): void }, options: ConsumerOptions): Consumer {
  const created = createConsumer({ backoff: { min: 20, max: 200 }, sseWelcomeTimeout: 1000, ...options })
  t.teardown(() => created.close())
  return created
}

/** Does `act` until `check` holds, waiting a moment between tries (bounded). */
async function retry(act: () => void, check: () => boolean, what: string): Promise<void> {
  // A try every 1.5 s: over long polling a command sent while the previous poll is being taken over can lose its answer.
  for (let i = 0; i < 15; i++) {
    act()
    for (let j = 0; j < 150; j++) {
      if (check()) return
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
  throw new Error(`timed out waiting for ${what}`)
}

const token = (user: string): Promise<string> =>
  new SignJWT({ ext: JSON.stringify({ user }) }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode('client-jwt'))

for (const transport of ['sse', 'long-poll'] as TransportName[]) {
  t.test(`${transport}: JWT identity (X-JID), presence, whispers, remote disconnect`, async (t) => {
    const { app, url } = await startServer(t, {
      jwtSecret: 'client-jwt',
      jwtForce: true,
      presenceTtl: 3,
      channels: { Me: { subscribed: (ctx) => ctx.transmit(ctx.identity) } }
    })
    const alice = consumer(t, { url, transports: [transport], headers: { 'X-JID': await token('alice') } })
    const bob = consumer(t, { url, transports: [transport], headers: { 'X-JID': await token('bob') } })
    const me: unknown[] = []
    alice.subscribe({ channel: 'Me' }, { received: (message) => me.push(message) })
    await until(() => me.length === 1, 'the identity')
    t.same(me, [{ user: 'alice' }], 'the JWT identifies the user')

    const aliceGot: unknown[] = []
    const bobGot: unknown[] = []
    const aliceSaw: PresenceEvent[] = []
    let aliceReady = false
    let bobReady = false
    const roomA = alice.subscribe({ stream: 'room' }, { received: (m) => aliceGot.push(m), presence: (e) => aliceSaw.push(e), connected: () => { aliceReady = true } })
    const roomB = bob.subscribe({ stream: 'room' }, { received: (m) => bobGot.push(m), connected: () => { bobReady = true } })
    await until(() => aliceReady && bobReady, 'both subscribed')
    roomA.join('alice', { name: 'Alice' })
    roomB.join('bob')
    // Every join and leave reaches the other subscriber as an event, whichever of its polls it falls between.
    const events = (): string[] => aliceSaw.filter((e) => e.type === 'join' || e.type === 'leave').map((e) => `${e.type}:${(e as { id: string }).id}`)
    await until(() => events().includes('join:bob'), "bob's join, at alice's")
    // Asked until answered: over long polling a command sent while the previous poll is being taken over can lose its answer.
    const latestInfo = (): PresenceEvent | undefined => [...aliceSaw].reverse().find((e) => e.type === 'info')
    await retry(() => roomA.presence(), () => { const info = latestInfo(); return info?.type === 'info' && info.total === 2 }, 'presence info with both')
    t.same(latestInfo(), { type: 'info', total: 2, records: [{ id: 'alice', info: { name: 'Alice' } }, { id: 'bob' }] })

    roomB.whisper({ typing: 'bob' })
    await until(() => aliceGot.length > 0, 'the whisper')
    await app.rt.publish('room', { marker: 1 })
    await until(() => bobGot.some((m) => (m as { marker?: number }).marker === 1), 'the marker')
    await until(() => aliceGot.length > 1, 'the marker, at alice')
    t.same(aliceGot, [{ typing: 'bob' }, { marker: 1 }], 'the whisper, sent once, arrives once')
    t.same(bobGot, [{ marker: 1 }], 'never back to the sender')

    roomB.leave()
    roomB.leave()
    await until(() => events().includes('leave:bob'), "bob's leave, at alice's")
    t.same(events().filter((e) => e.endsWith(':bob')), ['join:bob', 'leave:bob'], 'each once')

    await app.rt.hub.disconnectRemote('{"user":"bob"}', false)
    await until(() => bob.transport === undefined, "bob's disconnect")
    t.equal(alice.transport, transport, 'alice stays connected')
  })
}
