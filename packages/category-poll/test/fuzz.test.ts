// Fuzz (issue 14): hostile shapes in every field of publish and subscribe, over real sockets. Never a 5xx;
// every accepted event can be answered.
import { hostileJsonTexts, hugeName } from '@rt/core/testing'
import t from 'tap'
import { eventsOf, start } from './helpers.js'

const texts = hostileJsonTexts(14)

t.test('publish and subscribe with hostile input', async (t) => {
  const s = await start(t, { enablePublish: true, publishKey: 'k', bodyLimit: 8 * 1024 * 1024 })
  const publish = async (body: string): Promise<number> =>
    (await fetch(s.publishUrl, { method: 'POST', headers: { authorization: 'Bearer k' }, body })).status
  const statuses = new Set<number>()
  for (const text of texts) {
    const asString = JSON.stringify(text)
    for (const body of [text, `{"category":"c","data":${text}}`, `{"category":${asString},"data":1}`, `{"category":"c","data":${asString}}`, `{"category":"c","data":1,"x":${text}}`]) {
      const status = await publish(body)
      statuses.add(status)
      t.ok([200, 400].includes(status), `publish: status ${status}`)
    }
    for (const name of ['category', 'timeout', 'since_time', 'last_id']) {
      const res = await s.get(`category=c&timeout=1&since_time=0&${name}=${encodeURIComponent(text.slice(0, 8000))}`)
      t.ok(res.status < 500, `subscribe ${name}: status ${res.status}`)
      await res.arrayBuffer()
    }
  }
  t.equal(await publish(JSON.stringify({ category: hugeName(2000), data: 1 })), 400, 'a category over 1024 bytes')
  t.same([...statuses].sort(), [200, 400])
  const all = await s.get('category=c&timeout=1&since_time=0')
  t.equal(all.status, 200, 'every accepted event can be answered')
  t.ok(eventsOf((await all.json()) as Record<string, unknown>).length > 0)
})
