// Fuzz (issue 14): hostile shapes in every JSON field of POST /lp, over real sockets. Never a 5xx; a
// session that was there all along polls on.
import { hostileJsonTexts, manyLines } from '@rt/core/testing'
import t from 'tap'
import { connectTo, payloads, poll, post, serve } from './helpers.js'

const texts = hostileJsonTexts(14)

t.test('POST /lp with hostile bodies, on connect and on poll', async (t) => {
  const { app, url } = await serve(t, { pollInterval: 2, flushInterval: 20, keepaliveTimeout: 5, maxRequestSize: 8 * 1024 * 1024 })
  const { id } = await connectTo(url, ['live'])
  const statuses = new Set<number>()
  for (const text of texts) {
    const asString = JSON.stringify(text)
    for (const line of [
      text,
      `{"command":"subscribe","identifier":${asString}}`,
      `{"command":"subscribe","identifier":${JSON.stringify(`{"channel":"$pubsub","stream_name":"s","p":${text}}`)}}`,
      `{"command":"subscribe","identifier":${JSON.stringify(`{"channel":"$pubsub","stream_name":${asString}}`)}}`,
      `{"command":"subscribe","identifier":"{\\"channel\\":\\"$pubsub\\",\\"stream_name\\":\\"s\\"}","history":${text}}`,
      `{"command":"message","identifier":"{\\"channel\\":\\"$pubsub\\",\\"stream_name\\":\\"live\\"}","data":${asString}}`
    ]) {
      const connected = await post(url, line)
      statuses.add(connected.status)
      t.ok([200, 400].includes(connected.status), `connect: status ${connected.status}`)
    }
  }
  const many = await post(url, manyLines('{"command":"pong"}', 10_000))
  t.equal(many.status, 413, '10,000 commands')
  t.same([...statuses].sort(), [200, 400])
  await app.rt.publish('live', 'still here')
  const polled = await poll(url, id)
  t.equal(polled.status, 200)
  t.same(payloads(polled.lines), ['still here'])
})
