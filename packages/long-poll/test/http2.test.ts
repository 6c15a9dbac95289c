import { connect, type ClientHttp2Session } from 'node:http2'
import Fastify from 'fastify'
import t from 'tap'
import { rtCore } from '@rt/core'
import { rtLongPoll } from '../src/index.js'
import { FAST, payloads, pubsub, subscribe } from './helpers.js'

/** One POST /lp over an HTTP/2 session. */
function post(session: ClientHttp2Session, body: string, headers: Record<string, string> = {}): Promise<{ status: number; pollId: string | undefined; lines: Array<Record<string, unknown>> }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/lp', 'content-type': 'text/plain', ...headers })
    let status = 0
    let pollId: string | undefined
    let text = ''
    stream.on('response', (h) => {
      status = Number(h[':status'])
      pollId = h['x-anycable-poll-id'] as string | undefined
    })
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => { text += chunk })
    stream.on('end', () => resolve({ status, pollId, lines: text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) }))
    stream.on('error', reject)
    stream.end(body)
  })
}

t.test('HTTP/2 (h2c): an answer written whole confirms what it carried, as on HTTP/1.1', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(rtCore, { publicStreams: true })
  await app.register(rtLongPoll, FAST)
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const session = connect(base)
  t.teardown(() => session.close())
  const connected = await post(session, subscribe(pubsub('h2')))
  t.equal(connected.status, 200)
  t.match(connected.lines, [{ type: 'welcome' }, { type: 'confirm_subscription', identifier: pubsub('h2') }])
  const id = connected.pollId!
  await app.rt.publish('h2', { over: 'h2' })
  const first = await post(session, '', { 'x-anycable-poll-id': id })
  t.same(payloads(first.lines), [{ over: 'h2' }])
  await app.rt.publish('h2', { n: 2 })
  const second = await post(session, '', { 'x-anycable-poll-id': id })
  t.same(payloads(second.lines), [{ n: 2 }], 'the first answer was confirmed: nothing repeated')
})
