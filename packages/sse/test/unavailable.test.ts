import { assertUnavailable, unavailableBroker, unavailableStore, type AnsweredRequest } from '@rt/core/testing'
import t from 'tap'
import { answer, startApp } from './helpers.js'

// Every SSE endpoint answers an unreachable broker or session store with 503, Retry-After and no internal detail.
const pubsub = (stream: string): string => JSON.stringify({ channel: '$pubsub', stream_name: stream })
const subscribe = (stream: string): string => JSON.stringify({ command: 'subscribe', identifier: pubsub(stream) })

async function sent(url: string, options: Parameters<typeof answer>[1] = {}): Promise<AnsweredRequest> {
  const { status, headers, body } = await answer(url, options)
  return { status, retryAfter: headers['retry-after'], body }
}

t.test('GET and POST streams with a broker that cannot be reached', async (t) => {
  const { base } = await startApp(t, { broker: unavailableBroker() })
  assertUnavailable(t, await sent(`${base}/events?stream=room`), 'GET ?stream=')
  assertUnavailable(t, await sent(`${base}/events`, { method: 'POST', body: subscribe('room') }), 'POST stream')
})

t.test('POST streams and remote commands with a session store that cannot be reached', async (t) => {
  const { base } = await startApp(t, { sessionStore: unavailableStore() }, { remoteCommands: true })
  assertUnavailable(t, await sent(`${base}/events`, { method: 'POST', body: subscribe('room') }), 'POST stream')
  assertUnavailable(t, await sent(`${base}/events`, { method: 'POST', headers: { 'x-rt-sid': 'some-session' }, body: subscribe('room') }), 'remote commands')
})
