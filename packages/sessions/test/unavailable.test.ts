import { assertUnavailable, unavailableBroker, unavailableStore } from '@rt/core/testing'
import t from 'tap'
import { newId, start } from './helpers.js'

// The session API with a broker and a session store that cannot be reached: 503 with Retry-After, never 500.
t.test('POST answers 503 when a request needs the broker; GET (JSON or stream) never answers 500', async (t) => {
  const { base } = await start(t, {}, { broker: unavailableBroker(), sessionStore: unavailableStore() })
  const id = newId()
  const res = await fetch(`${base}/${id}`, { method: 'POST', body: JSON.stringify([{ identifier: { channel: 'RoomChannel', room: 'lobby' }, subscribe: true }]) })
  assertUnavailable(t, { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() }, 'POST subscribe')
  const polled = await fetch(`${base}/${id}?timeout=0`, { headers: { accept: 'application/json' } })
  t.equal(polled.status, 200, 'a JSON poll needs neither')
  await polled.text()
  const controller = new AbortController()
  const stream = await fetch(`${base}/${newId()}`, { signal: controller.signal })
  t.equal(stream.status, 200, 'an event stream needs neither')
  controller.abort()
})
