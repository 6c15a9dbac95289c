// Issue 14: bounded input — over real sockets.
import t from 'tap'
import { EventStream, newId, post, start } from './helpers.js'

const deepObject = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)

t.test('deep bodies, deep identifiers and too many requests are refused with a reason; nothing runs; the next request works', async (t) => {
  const { base, app } = await start(t, { bodyLimit: 4 * 1024 * 1024 })
  const id = newId()
  const url = `${base}/${id}`
  const cases: Array<[string, string, number, RegExp]> = [
    ['a 5,000-level identifier', `[{"identifier":{"channel":"RoomChannel","room":"x","p":${deepObject(5000)}},"subscribe":true}]`, 400, /nested deeper than 100 levels/],
    ['a 5,000-level send', `[{"identifier":{"channel":"RoomChannel","room":"x"},"send":{"action":"say","text":${deepObject(5000)}}}]`, 400, /nested deeper than 100 levels/],
    ['10,000 requests', JSON.stringify(Array.from({ length: 10_000 }, () => ({ identifier: { channel: 'RoomChannel', room: 'x' }, subscribe: true }))), 413, /more than 100 requests in one body/]
  ]
  for (const [name, body, status, reason] of cases) {
    const res = await post(url, body)
    t.equal(res.status, status, name)
    t.match((res.body as { message: string }).message, reason, name)
  }
  t.equal(app.rtSessions.get(id), undefined, 'no session was created')
  const long = await post(url, [{ identifier: { channel: 'RoomChannel', room: 'r'.repeat(60_000) }, subscribe: true }])
  t.equal(long.status, 200)
  t.match(long.body, [{ error: /identifier longer than 8192 characters/ }], 'a 60 KB room param is that request\'s error')
  const stream = await EventStream.open(url)
  const ok = await post(url, [{ identifier: { channel: 'RoomChannel', room: 'fine' }, subscribe: true }])
  t.equal(ok.status, 200)
  t.notOk((ok.body as Array<{ error?: string }>)[0]!.error)
  await stream.until(() => stream.events.some((e) => e.json.type === 'connected'))
  stream.close()
})
