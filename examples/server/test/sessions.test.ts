import { randomBytes } from 'node:crypto'
import http from 'node:http'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFromEnv } from '../src/config.js'

/** Reads `data:` events of an event stream until `count` arrived. */
function readEvents(url: string, count: number, onOpen: () => void): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const events: Array<Record<string, unknown>> = []
    let buffer = ''
    const request = http.get(url, { headers: { accept: 'text/event-stream' } }, (response) => {
      if (response.statusCode !== 200) return reject(new Error(`status ${response.statusCode}`))
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const data = buffer.slice(0, end).split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n')
          buffer = buffer.slice(end + 2)
          if (data === '') continue
          events.push(JSON.parse(data) as Record<string, unknown>)
          if (events.length === 1) onOpen()
          if (events.length === count) {
            request.destroy()
            resolve(events)
          }
        }
      })
    })
    request.on('error', reject)
  })
}

t.test('the example serves @rt/sessions under /sessions: a ChatChannel round trip', async (t) => {
  const { app, endpoints } = await buildApp({ ...configFromEnv({}), port: 0 })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  t.ok(endpoints.some((e) => e.path === '/sessions/{id}'))
  const url = `${address}/sessions/${randomBytes(16).toString('base64url')}`
  const identifier = { channel: 'ChatChannel', room: 'lobby' }
  let answers: unknown
  const events = await readEvents(url, 3, () => {
    void fetch(url, {
      method: 'POST',
      body: JSON.stringify([{ identifier, subscribe: true }, { identifier, send: { action: 'speak', user: 'ann', text: 'hello' } }])
    }).then(async (res) => { answers = await res.json() })
  })
  t.same(events[0], { type: 'joined', id: url.split('/').pop() })
  t.match(events[1], { type: 'connected', identifier })
  t.match(events[2], { type: 'received', identifier, message: { user: 'ann', text: 'hello' } })
  t.match(answers, [{ chan_id: events[1]!.chan_id, session_id: events[1]!.session_id }, { chan_id: events[1]!.chan_id }])

  // The same session continues by long polling once the event stream is gone.
  const id = url.split('/').pop()!
  while (app.rtSessions.get(id)!.listenerCount > 0) await new Promise((resolve) => setTimeout(resolve, 5))
  await app.rt.publish('chat_lobby', { user: 'system', text: 'polled' })
  const polled = await (await fetch(`${url}?timeout=5`, { headers: { accept: 'application/json' } })).json() as { messages: Array<{ message: unknown }>; session_id: string }
  t.same(polled.messages.map((m) => m.message), [{ user: 'system', text: 'polled' }])
  t.equal(polled.session_id, events[1]!.session_id)
})
