// rt's own code per subscribe request answered from history (20 events), no HTTP: parse the query, start a
// HeldPoll on a stub reply, encode and send. <dir> is a copy of @rt/category-poll (package.json and dist/).
//   node tools/category-poll-stub.mjs <dir>
import { EventEmitter } from 'node:events'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { MemoryBroker } from '@rt/core'
const build = process.argv[2]
const base = pathToFileURL(resolve(build, 'dist')).href
const { HeldPoll, HeldPolls } = await import(`${base}/handler/subscribe.js`)
const { parseSubscribeQuery } = await import(`${base}/handler/query.js`)
const { CategoryFeeds } = await import(`${base}/feed.js`)
const { EventEncoder } = await import(`${base}/encoder.js`)
const { categoryEventId } = await import(`${base}/event-id.js`)
const broker = new MemoryBroker({ historyLimit: 10000, historyTtl: 600 })
const encoder = new EventEncoder()
let first
for (let i = 0; i < 21; i++) { const m = await broker.publish('bench-3', { s: i, t: 1234567.123, pad: 'x'.repeat(40) }); first ??= m }
const context = { broker, feeds: new CategoryFeeds(broker, encoder), view: { maxEventBufferSize: 250, eventTtlMs: Infinity, maxEventsPerResponse: 100 }, encoder, deleteAfterRead: false, held: new HeldPolls(), log: console }
const raw = { query: { category: 'bench-3', timeout: '30', since_time: '1', last_id: categoryEventId(first) } }
let bytes = 0
const reply = { raw: new EventEmitter(), code () { return this }, send (body) { bytes += body.length; return this } }
async function one () {
  const query = parseSubscribeQuery({ ...raw.query }, 110)
  await new HeldPoll(context, query, reply).start()
}
const N = 20000
for (let r = 0; r < 7; r++) {
  const t0 = process.cpuUsage()
  for (let i = 0; i < N; i++) await one()
  const c = process.cpuUsage(t0)
  if (r > 0) process.stdout.write(`${((c.user + c.system) / N).toFixed(2)} `)
}
console.log(`µs per poll (${build}), ${bytes / 7 / N} bytes`)
