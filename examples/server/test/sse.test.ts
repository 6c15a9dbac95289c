import { request } from 'node:http'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'

/**
 * The @rt/sse done-check, as `curl -N 'localhost:8080/events?stream=chat_1'`
 * shows it: welcome, confirm_subscription, pings, then a message published
 * through /_broadcast, with its `id:`.
 */
t.test('curl -N /events?stream=chat_1: welcome, confirmation, pings, a broadcast with its id', async (t) => {
  const { app, endpoints } = await buildApp({ ...configFromEnv({}), broadcastKey: 'key', port: 0 })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  t.ok(endpoints.some((e) => e.method === 'GET' && e.path === '/events'), 'listed at /endpoints')

  let text = ''
  const waiters: Array<() => void> = []
  const until = async (pattern: RegExp): Promise<RegExpMatchArray> => {
    for (;;) {
      const match = text.match(pattern)
      if (match !== null) return match
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
  const response = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    request(`${address}/events?stream=chat_1`, { agent: false }, resolve).on('error', reject).end()
  })
  t.teardown(() => response.destroy())
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-type'], 'text/event-stream; charset=utf-8')
  response.setEncoding('utf8')
  response.on('data', (chunk: string) => {
    text += chunk
    for (const wake of waiters.splice(0)) wake()
  })

  await until(/^event: welcome\ndata: \{"type":"welcome","sid":"[^"]+"\}\n\nevent: confirm_subscription\ndata: \{"type":"confirm_subscription","identifier":"\{\\"channel\\":\\"\$pubsub\\",\\"stream_name\\":\\"chat_1\\"\}"\}\n\n/)
  // The example pings every 3 s (AnyCable's default), the first one jittered.
  await until(/event: ping\ndata: \{"type":"ping","message":\d+\}\n\n/)

  const res = await fetch(`${address}/_broadcast`, {
    method: 'POST',
    headers: { authorization: 'Bearer key' },
    body: JSON.stringify({ stream: 'chat_1', data: JSON.stringify({ user: 'curl', text: 'hello' }) })
  })
  t.equal(res.status, 201)
  const [, id] = await until(/data: \{"user":"curl","text":"hello"\}\nid: (\S+)\n\n/)
  t.equal(id, `1/${(await app.rt.broker.position('chat_1')).epoch}/chat_1`, 'AnyCable id: offset/epoch/stream')
  t.pass(`curl would show:\n${text}`)
})
