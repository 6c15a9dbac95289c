// Fuzz (issue 14): hostile shapes in every query parameter, header and JSON field of /events, over real
// sockets. Never a 5xx or a hang; a subscriber that was there all along still gets the next message.
import { hostileJsonTexts, hugeName, manyLines, manyStreamCursor } from '@rt/core/testing'
import t from 'tap'
import { answer, http2, open, startApp, subscribed } from './helpers.js'

const texts = hostileJsonTexts(14).filter((text) => text.length < 6000)

t.test('GET and POST /events with hostile input', async (t) => {
  const { app, base } = await startApp(t, {}, { bodyLimit: 8 * 1024 * 1024 })
  const live = await subscribed(`${base}/events?stream=live`)
  const statuses = new Set<number>()
  const check = async (url: string, init: Parameters<typeof open>[1] = {}): Promise<void> => {
    const stream = await open(url, init)
    statuses.add(stream.status)
    t.ok([200, 400, 413, 431].includes(stream.status), `status ${stream.status}`)
    stream.close()
  }
  for (const text of texts) {
    const q = encodeURIComponent(text)
    for (const name of ['identifier', 'channel', 'stream', 'signed_stream', 'turbo_signed_stream_name', 'history_since', 'last_event_id']) {
      await check(`${base}/events?stream=s&${name}=${q}`)
    }
    await check(`${base}/events?stream=s`, { headers: { 'last-event-id': text.slice(0, 8000) } })
    const asString = JSON.stringify(text)
    for (const line of [
      text,
      `{"command":"subscribe","identifier":${asString}}`,
      `{"command":"subscribe","identifier":${JSON.stringify(`{"channel":"$pubsub","stream_name":"s","p":${text}}`)}}`,
      `{"command":"subscribe","identifier":"{\\"channel\\":\\"$pubsub\\",\\"stream_name\\":\\"s\\"}","history":${text}}`
    ]) {
      await check(`${base}/events`, { method: 'POST', body: line })
    }
  }
  await check(`${base}/events?stream=${hugeName(5000)}`)
  await check(`${base}/events?stream=s`, { headers: { 'last-event-id': manyStreamCursor(300) } })
  const oversized = check(`${base}/events?stream=s`, { headers: { 'last-event-id': manyStreamCursor(10_000) } })
  // Past Node's header limits: HTTP/1.1's parser answers 431; HTTP/2's layer refuses the stream before any route.
  if (http2) await t.rejects(oversized, { code: 'ERR_HTTP2_STREAM_ERROR' })
  else await oversized
  await check(`${base}/events`, { method: 'POST', body: manyLines('{"command":"subscribe","identifier":"{\\"channel\\":\\"$pubsub\\",\\"stream_name\\":\\"s\\"}"}', 10_000) })
  t.ok(statuses.has(400) && statuses.has(431), `statuses seen: ${[...statuses].join(', ')}`)
  await app.rt.publish('live', 'still here')
  t.equal((await live.nextMatching((e) => e.event === 'message')).data, 'still here')
  live.close()
  t.equal((await answer(`${base}/events`)).status, 400, 'and a plain bad request is still a 400')
})
