// Fuzz (issue 14): hostile shapes in every JSON field of POST /sessions/:id, over real sockets. Never a 5xx.
import { hostileJsonTexts, hugeName } from '@rt/core/testing'
import t from 'tap'
import { newId, post, start } from './helpers.js'

const texts = hostileJsonTexts(14)

t.test('POST bodies with hostile input', async (t) => {
  const { base } = await start(t, { bodyLimit: 8 * 1024 * 1024 })
  const url = `${base}/${newId()}`
  const statuses = new Set<number>()
  const send = async (body: string): Promise<void> => {
    const res = await fetch(url, { method: 'POST', body })
    statuses.add(res.status)
    t.ok([200, 400, 413].includes(res.status), `status ${res.status}`)
    await res.arrayBuffer()
  }
  for (const text of texts) {
    const asString = JSON.stringify(text)
    await send(text)
    await send(`[${text}]`)
    await send(`[{"identifier":{"channel":"RoomChannel","room":${text}},"subscribe":true}]`)
    await send(`[{"identifier":{"channel":"RoomChannel","room":${asString}},"subscribe":true}]`)
    await send(`[{"identifier":{"channel":"RoomChannel","room":"r"},"send":{"action":"say","text":${text}}}]`)
  }
  await send(`[{"identifier":{"channel":"RoomChannel","room":"${hugeName(60_000)}"},"subscribe":true}]`)
  await send(`[${Array.from({ length: 10_000 }, () => '{"identifier":{"channel":"RoomChannel","room":"r"},"subscribe":true}').join(',')}]`)
  t.ok(statuses.has(400) && statuses.has(413), `statuses seen: ${[...statuses].join(', ')}`)
  const ok = await post(url, [{ identifier: { channel: 'RoomChannel', room: 'fine' }, subscribe: true }])
  t.equal(ok.status, 200, 'the next good request works')
})
