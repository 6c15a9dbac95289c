import { connect } from 'node:net'
import t from 'tap'
import { FAST, connectTo, http2, payloads, poll, serve, until } from './helpers.js'

t.test('a broadcast (POST /_broadcast) reaches a held poll', async (t) => {
  const { app, url } = await serve(t)
  const { id } = await connectTo(url, ['chat_1'])
  const held = poll(url, id)
  await until(() => app.rt.hub.listeners('chat_1') === 1, 'the poll to be held')
  const base = url.replace(/\/lp$/, '')
  const broadcast = await fetch(`${base}/_broadcast`, { method: 'POST', headers: { authorization: 'Bearer key' }, body: JSON.stringify({ stream: 'chat_1', data: JSON.stringify({ text: 'hi' }) }) })
  t.equal(broadcast.status, 201)
  const answer = await held
  t.equal(answer.status, 200)
  t.equal(answer.pollId, id)
  t.match(answer.lines, [{ identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'chat_1' }), message: { text: 'hi' }, stream_id: 'chat_1', offset: 1 }])
})

t.test('messages published between polls come with the next poll, in order, once', async (t) => {
  const { app, url } = await serve(t)
  const { id } = await connectTo(url, ['a', 'b'])
  for (let n = 1; n <= 5; n++) await app.rt.publish(n % 2 === 0 ? 'b' : 'a', { n })
  const next = await poll(url, id)
  t.same(payloads(next.lines).map((m) => (m as { n: number }).n).sort(), [1, 2, 3, 4, 5])
  t.same(payloads(next.lines.filter((l) => l.stream_id === 'a')), [{ n: 1 }, { n: 3 }, { n: 5 }], 'in stream order')
  await app.rt.publish('a', { n: 6 })
  t.same(payloads((await poll(url, id)).lines), [{ n: 6 }], 'nothing repeated')
  t.equal(app.rt.hub.listeners('a'), 0, 'no stream is held between polls')
})

t.test('the flush interval batches messages published while a poll is held', async (t) => {
  const { app, url } = await serve(t, { ...FAST, flushInterval: 1000 })
  const { id } = await connectTo(url, ['burst'])
  const held = poll(url, id)
  await until(() => app.rt.hub.listeners('burst') === 1, 'the poll to be held')
  await app.rt.publish('burst', 1)
  await new Promise((resolve) => setImmediate(resolve))
  await app.rt.publish('burst', 2)
  await app.rt.publish('burst', 3)
  t.same(payloads((await held).lines), [1, 2, 3], 'one answer for the burst')
})

t.test('an idle poll is answered empty after the poll interval', async (t) => {
  const { url } = await serve(t, { ...FAST, pollInterval: 0.05 })
  const { id } = await connectTo(url, ['quiet'])
  const answer = await poll(url, id)
  t.equal(answer.status, 200)
  t.equal(answer.text, '')
  t.equal(answer.pollId, id)
  t.equal((await poll(url, id)).status, 200, 'the session lives on')
})

// HTTP/1.1 only (README, "Tests"): it writes a raw HTTP/1.1 request on a TCP socket and cuts that socket.
if (!http2) t.test('a response cut mid-write is served again by the next poll', async (t) => {
  // Answers this large need a cap above them (the default of 1 MiB would split them).
  const { app, url } = await serve(t, { ...FAST, flushInterval: 0, maxAnswerSize: 128 * 1024 * 1024 }, { history: { historyLimit: 100 } })
  const { id } = await connectTo(url, ['big'])
  const chunk = 'x'.repeat(1024 * 1024)
  for (let n = 1; n <= 64; n++) await app.rt.publish('big', { n, chunk })
  // A 64 MiB answer (more than loopback's socket buffers hold): the client reads its first bytes and cuts the connection,
  // long before the server could have handed the whole answer to the kernel.
  const target = new URL(url)
  const cut = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(target.port), target.hostname, () => {
      socket.write(`POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nX-Anycable-Poll-ID: ${id}\r\nContent-Length: 0\r\n\r\n`)
    })
    socket.once('data', (data) => {
      socket.destroy()
      resolve(data.toString('latin1').split('\r\n')[0]!)
    })
    socket.on('error', reject)
  })
  t.equal(cut, 'HTTP/1.1 200 OK')
  const again = await poll(url, id)
  const ns = payloads(again.lines).map((m) => (m as { n: number }).n)
  t.same(ns, Array.from({ length: 64 }, (_, i) => i + 1), 'everything again, from the first message')
  t.equal((await poll(url, id, undefined)).text, '', 'and, once received, not again')
})
