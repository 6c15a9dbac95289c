import t from 'tap'
import { Outgoing, type Encoder } from '@rt/core'
import { encodeGetFrame, encodePostFrame } from '../src/encoder.js'
import { json, open, startApp, subscribed, type SseEvent } from './helpers.js'

t.test('a slow client is cut off with disconnect "slow" and resumes from history; fast clients get every message', async (t) => {
  const { app, base } = await startApp(t, { history: { historyLimit: 100_000 } }, { maxBufferedBytes: 256 * 1024 })
  const fast = await Promise.all([1, 2].map(() => subscribed(`${base}/events?stream=flood`)))
  const slow = await subscribed(`${base}/events?stream=flood`)
  const received: SseEvent[] = []
  // Stop reading: the kernel buffers fill, then the server's.
  slow.response.pause()

  const payload = 'x'.repeat(16 * 1024)
  let published = 0
  // Publish until the server gives up on the slow client (bounded, in case it never would).
  while (app.rt.hub.listeners('flood') === 3 && published < 4000) {
    await app.rt.publish('flood', { n: ++published, payload })
    // Let every client read (they share this process with the server).
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.rt.hub.listeners('flood'), 2, 'the slow client was cut off')
  for (let i = 0; i < 20; i++) await app.rt.publish('flood', { n: ++published, payload })

  for (const client of fast) {
    const events: SseEvent[] = []
    while (events.length < published) {
      const event = await client.next()
      if (event.event === 'message') events.push(event)
      else t.equal(event.event, 'ping')
    }
    t.same(events.map((e) => (json(e) as { n: number }).n), Array.from({ length: published }, (_, i) => i + 1), 'a fast client got every message, in order')
    client.close()
  }

  slow.response.resume()
  await slow.end()
  for (const event of slow.events.slice(2)) received.push(event)
  const goodbye = received.pop()!
  t.equal(goodbye.event, 'disconnect')
  t.same(json(goodbye), { type: 'disconnect', reason: 'slow', reconnect: true })
  t.ok(received.length < published, `the slow client got ${received.length} of ${published} before being cut off`)
  const lastId = received.at(-1)!.id!

  // It comes back with its Last-Event-ID and gets the rest from history.
  const back = await open(`${base}/events?stream=flood`, { headers: { 'last-event-id': lastId } })
  while (received.length < published) {
    const event = await back.next()
    if (event.event === 'message') received.push(event)
  }
  t.same(received.map((e) => (json(e) as { n: number }).n), Array.from({ length: published }, (_, i) => i + 1), 'nothing lost, nothing twice')
  back.close()
})

t.test('one encoding per broadcast and format: every connection writes the same Buffer', async (t) => {
  const { app, base } = await startApp(t)
  const results = new Map<unknown, unknown[]>()
  const encode = Outgoing.prototype.encode
  Outgoing.prototype.encode = function <T>(this: Outgoing, encoder: Encoder<T>): T {
    const result = encode.call(this, encoder) as T
    if (this.source !== undefined) results.set(encoder, [...(results.get(encoder) ?? []), result])
    return result
  }
  t.teardown(() => { Outgoing.prototype.encode = encode })
  const body = JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'shared' }) })
  const gets = await Promise.all([1, 2, 3].map(() => subscribed(`${base}/events?stream=shared`)))
  const posts = await Promise.all([1, 2].map(() => subscribed(`${base}/events`, 1, { method: 'POST', body })))
  await app.rt.publish('shared', { hello: 1 })
  for (const stream of gets) t.equal((await stream.next()).data, '{"hello":1}')
  for (const stream of posts) t.match(json(await stream.next()), { message: { hello: 1 } })
  const get = results.get(encodeGetFrame)!
  const post = results.get(encodePostFrame)!
  t.equal(get.length, 3)
  t.equal(new Set(get).size, 1, 'three GET connections, one Buffer')
  t.equal(post.length, 2)
  t.equal(new Set(post).size, 1, 'two POST connections, one Buffer')
  t.not(get[0], post[0])
  for (const stream of [...gets, ...posts]) stream.close()
})
