import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { startCable } from './fixture/cable.mjs'
import { LOBBY, eventually, poll, pollUntil, room, subscribe } from './helpers.js'
import { redisNode, redisPrefix } from './redis-node.js'

const cable = await startCable()
t.teardown(() => cable.stop())
const prefix = redisPrefix(t, 'ac')
const HOLDER_TTL = 600

/** A bridged rt process on Redis in a child process (so it can be killed), and its URL. */
async function childNode(): Promise<{ url: string; kill(): Promise<void> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./fixture/rt-node.mjs', import.meta.url))], {
    env: { ...process.env, CABLE_URL: cable.url, CABLE_ORIGIN: cable.origin, KEY_PREFIX: prefix, HOLDER_TTL: String(HOLDER_TTL) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += String(chunk)
      const match = /LISTENING (\S+)/.exec(out)
      if (match !== null) resolve(match[1]!)
    })
    child.once('exit', (code) => reject(new Error(`the rt child exited (${code}) before listening`)))
  })
  t.teardown(() => { child.kill('SIGKILL') })
  return { url, kill: async () => { child.kill('SIGKILL'); await exited } }
}

/** A bridged rt process on Redis in this process. */
const localNode = (t: { teardown(fn: () => unknown): void }): Promise<{ app: FastifyInstance; url: string }> =>
  redisNode(t, { prefix, bridge: { url: cable.url, origin: cable.origin, holderTtl: HOLDER_TTL, commandTimeout: 1000 } })

t.test('with Redis, two processes taking a dead holder\'s session over at once open exactly one upstream socket', async (t) => {
  const upstreamSockets = async (user: string): Promise<number> => (await cable.stats()).users.filter((u) => u === user).length
  const a = await childNode()
  const connect = await poll(a.url, { cookie: 'user=kira', lines: [subscribe(room('takeover'))] })
  t.equal(connect.status, 200)
  const sid = connect.id!
  await eventually(async () => (await upstreamSockets('kira')) === 1, 'kira connected upstream through A')
  await a.kill()
  await eventually(async () => (await upstreamSockets('kira')) === 0, 'A\'s upstream socket gone with A')
  const b = await localNode(t)
  const c = await localNode(t)
  // A precondition, not a measurement: A's holder record has run out (A cannot renew it any more).
  await new Promise((resolve) => setTimeout(resolve, 2 * HOLDER_TTL))

  // Both take the session up at the same moment (as two requests on two processes would): each asks the bridge to re-open.
  const sink = { send: () => undefined }
  const [onB, onC] = await Promise.all([b.app.rt.hub.resume(sid, sink), c.app.rt.hub.resume(sid, sink)])
  t.ok(onB !== undefined && onC !== undefined, 'both processes took the session up')
  t.equal(b.app.rtActionCable.socketCount + c.app.rtActionCable.socketCount, 1, 'one of them holds the upstream socket')
  await eventually(async () => (await upstreamSockets('kira')) >= 1, 'the re-opened upstream socket')
  t.equal(await upstreamSockets('kira'), 1, 'exactly one upstream socket, on the fixture\'s side too')
  onB!.detach()
  onC!.detach()
})

t.test('with Redis, any process answers a poll; the holder of the upstream socket killed → a poll elsewhere re-opens it', async (t) => {
  const a = await childNode()
  const { app, url: b } = await localNode(t)

  const connect = await poll(a.url, { cookie: 'user=ann', lines: [subscribe(LOBBY)] })
  t.equal(connect.status, 200)
  t.ok(connect.messages.some((m) => m.type === 'confirm_subscription'), 'subscribed through process A')
  const id = connect.id!

  await cable.broadcast({ room: 'lobby', data: { n: 1 } })
  const onB = await pollUntil(b, id, (m) => 'message' in m && (m.message as { n?: number }).n === 1)
  t.ok(onB.length > 0, 'process B answers the poll while A holds the upstream socket')
  t.equal(app.rtActionCable.socketCount, 0, 'B holds no upstream socket meanwhile')

  await a.kill()
  const reopened = await pollUntil(b, id, (m) => m.type === 'confirm_subscription')
  t.ok(reopened.some((m) => m.type === 'reject_history' && m.identifier === LOBBY), 'the client is told that messages may have been missed')
  t.equal(app.rtActionCable.socketCount, 1, 'B re-opened the upstream socket')
  await cable.broadcast({ room: 'lobby', data: { n: 2 } })
  await pollUntil(b, id, (m) => 'message' in m && (m.message as { n?: number }).n === 2)
  t.pass('later broadcasts are delivered through the re-opened socket')
})
