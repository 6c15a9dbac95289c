import t from 'tap'
import { createConsumer, type Consumer, type ConsumerOptions } from '../src/index.js'
import type { TransportName } from '../src/types.js'
import { startServer, until } from './server.js'

function consumer(t: { teardown(fn: () => unknown): void }, options: ConsumerOptions): Consumer {
  const created = createConsumer({ backoff: { min: 20, max: 200 }, sseWelcomeTimeout: 1000, ...options })
  t.teardown(() => created.close())
  return created
}

/** A server whose `authenticate` takes the tokens in `valid` (from ?jid= or X-JID) and records what it saw. */
async function tokenServer(t: { teardown(fn: () => unknown): void }, valid: string[]): Promise<{ url: string; seen: string[] }> {
  const seen: string[] = []
  const { url } = await startServer(t, {
    authenticate: (request) => {
      const token = (request.query as { jid?: string }).jid ?? request.headers['x-jid']
      seen.push(String(token))
      return typeof token === 'string' && valid.includes(token) ? { token } : false
    }
  })
  return { url, seen }
}

for (const transport of ['sse', 'long-poll'] as TransportName[]) {
  t.test(`${transport}: a string token goes as ?jid=, or in tokenHeader`, async (t) => {
    const { url, seen } = await tokenServer(t, ['secret'])
    let connected = 0
    consumer(t, { url, transports: [transport], token: 'secret' }).subscribe({ channel: 'Echo' }, { connected: () => connected++ })
    consumer(t, { url, transports: [transport], token: 'secret', tokenHeader: 'x-jid' }).subscribe({ channel: 'Echo' }, { connected: () => connected++ })
    await until(() => connected === 2, 'both connected')
    t.same([...new Set(seen)], ['secret'])
  })

  t.test(`${transport}: a token function is asked again once after a 401, then a second refusal is final`, async (t) => {
    const { url, seen } = await tokenServer(t, ['fresh'])
    let calls = 0
    const tokens = ['stale', 'fresh']
    const rt = consumer(t, { url, transports: [transport], token: async () => tokens[calls++]! })
    let connected = 0
    rt.subscribe({ channel: 'Echo' }, { connected: () => connected++ })
    await until(() => connected === 1, 'connected with the fresh token')
    t.equal(calls, 2)
    t.same(seen, ['stale', 'fresh'])

    let asked = 0
    const refused = consumer(t, { url, transports: [transport], token: () => { asked++; return 'never' } })
    refused.subscribe({ channel: 'Echo' })
    await until(() => asked === 2 && seen.filter((s) => s === 'never').length === 2, 'asked twice')
    await until(() => { try { refused.subscribe({ stream: 'probe' }).unsubscribe() } catch { return true } return false }, 'closed')
    t.equal(asked, 2, 'not asked a third time')
  })
}

t.test('a token function that fails closes the consumer', async (t) => {
  const { url } = await tokenServer(t, [])
  const rt = consumer(t, { url, token: () => Promise.reject(new Error('no session')) })
  rt.subscribe({ channel: 'Echo' })
  await until(() => { try { rt.subscribe({ stream: 'probe' }).unsubscribe() } catch { return true } return false }, 'closed')
  t.pass('closed')
})
