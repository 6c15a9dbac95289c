import { connect, type Socket } from 'node:net'
import t from 'tap'
import { FAST, connectTo, http2, payloads, poll, serve, until } from './helpers.js'

t.test('an answer carries at most maxAnswerSize bytes; the rest waits for the next poll, every message once, in order', async (t) => {
  const maxAnswerSize = 4096
  const { app, url } = await serve(t, { ...FAST, pollInterval: 30, flushInterval: 50, maxAnswerSize })
  const { id } = await connectTo(url, ['big'])
  const held = poll(url, id)
  await until(() => app.rt.hub.listeners('big') === 1, 'the poll to be held')
  const filler = 'x'.repeat(500)
  for (let n = 1; n <= 40; n++) await app.rt.publish('big', { n, filler })
  const received: unknown[] = []
  let answer = await held
  let answers = 1
  for (;;) {
    t.ok(Buffer.byteLength(answer.text) <= maxAnswerSize, `answer ${answers} is ${Buffer.byteLength(answer.text)} bytes`)
    received.push(...payloads(answer.lines).map((message) => (message as { n: number }).n))
    if (received.length >= 40) break
    answer = await poll(url, id)
    answers++
  }
  t.same(received, Array.from({ length: 40 }, (_, i) => i + 1))
  t.ok(answers >= 5, `split over ${answers} answers`)
})

t.test('a single message larger than maxAnswerSize still goes out, alone', async (t) => {
  const { app, url } = await serve(t, { ...FAST, pollInterval: 30, flushInterval: 50, maxAnswerSize: 100 })
  const { id } = await connectTo(url, ['big'])
  await app.rt.publish('big', { text: 'y'.repeat(300) })
  await app.rt.publish('big', { text: 'z'.repeat(300) })
  t.same(payloads((await poll(url, id)).lines), [{ text: 'y'.repeat(300) }])
  t.same(payloads((await poll(url, id)).lines), [{ text: 'z'.repeat(300) }])
})

// HTTP/1.1 only (README, "Tests"): it writes a raw HTTP/1.1 request on a TCP socket and watches that socket.
if (!http2) t.test('a client that does not read its answer is cut off after keepaliveTimeout, and it is served again', async (t) => {
  const { app, url } = await serve(t, { pollInterval: 30, flushInterval: 10, keepaliveTimeout: 1, maxAnswerSize: 16 * 1024 * 1024 })
  const { id } = await connectTo(url, ['big'])
  // Far more than the socket buffers take, so the answer cannot be written while the client does not read.
  const chunk = 'w'.repeat(1024 * 1024)
  for (let n = 1; n <= 8; n++) await app.rt.publish('big', { n, chunk })
  const { port } = new URL(url)
  // The server's side of the reader's connection: it must close.
  let serverSide: Socket | undefined
  const client = connect(Number(port), '127.0.0.1')
  app.server.on('connection', (socket: Socket) => {
    if (socket.remotePort === client.localPort) serverSide = socket
  })
  client.on('error', () => undefined)
  await new Promise((resolve) => client.once('connect', resolve))
  client.pause()
  client.write(`POST /lp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Anycable-Poll-ID: ${id}\r\nContent-Length: 0\r\n\r\n`)
  await until(() => serverSide !== undefined, 'the reader to connect')
  await until(() => serverSide!.destroyed, 'the server to cut the reader off')
  client.destroy()
  const again = await poll(url, id)
  t.same(payloads(again.lines).map((message) => (message as { n: number }).n), [1, 2, 3, 4, 5, 6, 7, 8], 'nothing was confirmed')
})
