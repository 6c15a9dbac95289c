import { connect } from 'node:http2'
import Fastify from 'fastify'
import t from 'tap'
import { rtCore } from '@rt/core'
import { rtSse } from '../src/index.js'
import { startApp, subscribed } from './helpers.js'

t.test('HTTP/2 (h2c): the stream works, without connection-specific headers', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(rtCore, { publicStreams: true })
  await app.register(rtSse)
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const session = connect(base)
  t.teardown(() => session.close())
  const stream = session.request({ ':path': '/events?stream=h2' })
  const headers = await new Promise<Record<string, unknown>>((resolve) => stream.once('response', resolve))
  t.equal(headers[':status'], 200)
  t.equal(headers['content-type'], 'text/event-stream; charset=utf-8')
  t.notOk('connection' in headers, 'no Connection header on HTTP/2')
  stream.setEncoding('utf8')
  let text = ''
  await new Promise<void>((resolve) => {
    stream.on('data', (chunk: string) => {
      text += chunk
      if (text.includes('event: confirm_subscription')) resolve()
    })
  })
  await app.rt.publish('h2', { over: 'h2' })
  await new Promise<void>((resolve) => {
    const check = (): void => { if (text.includes('data: {"over":"h2"}\nid: 1/')) resolve() }
    stream.on('data', check)
    check()
  })
  t.match(text, /^event: welcome\n/)
  stream.close()
})

// The HTTP/2 run (RT_TEST_HTTP2=1) runs every suite over TLS; this one also runs in the HTTP/1.1 run, so that
// coverage sees the HTTP/2-only branch.
t.test('HTTP/2 with TLS: a stream the client resets, then written to, releases its subscription', async (t) => {
  const { app, base } = await startApp(t, {}, {}, 'http2')
  const stream = await subscribed(`${base}/events?stream=reset`)
  await app.rt.publish('reset', { n: 0 })
  await stream.next()
  stream.close()
  await stream.end()
  // Written before the server has heard of the reset: Node then emits no 'close' on the response.
  for (let n = 1; n <= 3; n++) await app.rt.publish('reset', { n })
  while (app.rt.hub.listeners('reset') > 0) await new Promise((resolve) => setTimeout(resolve, 2))
  t.equal(app.rt.hub.listeners('reset'), 0)
})
