// JS heap retained per message kept in history (memory broker, 1,000 streams × 100 messages), with and without
// one live subscriber per stream whose sink encodes each reply as an SSE frame. <dir> is the repository root of
// a build (packages/core/dist, packages/sse/dist), so an old and a new build run side by side.
//   node --expose-gc tools/history-memory.mjs <dir> [sub]
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
const root = pathToFileURL(resolve(process.argv[2] ?? '..')).href
const subscribe = process.argv[3] === 'sub'
const { Hub } = await import(`${root}/packages/core/dist/hub/hub.js`)
const { MemoryBroker } = await import(`${root}/packages/core/dist/memory-broker.js`)
const { MemorySessionStore } = await import(`${root}/packages/core/dist/session-store.js`)
const { encodeGetFrame } = await import(`${root}/packages/sse/dist/encoder.js`)
const STREAMS = 1000
const PER_STREAM = 100
const broker = new MemoryBroker({ historyLimit: PER_STREAM })
const hub = new Hub({ broker, store: new MemorySessionStore(), publicStreams: true })
const sink = { send: (outgoing) => { outgoing.encode(encodeGetFrame) } }
if (subscribe) {
  for (let i = 0; i < STREAMS; i++) {
    const result = await hub.connect({ headers: {}, query: {} }, sink, {})
    await result.session.handle({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: `s${i}` }) })
  }
}
globalThis.gc(); globalThis.gc()
const before = process.memoryUsage().heapUsed
for (let n = 0; n < PER_STREAM; n++) for (let i = 0; i < STREAMS; i++) await broker.publish(`s${i}`, { s: n, t: 1234.5, b: 'x'.repeat(64) })
await new Promise((resolve) => setTimeout(resolve, 50))
globalThis.gc(); globalThis.gc()
const perMessage = Math.round((process.memoryUsage().heapUsed - before) / (STREAMS * PER_STREAM))
console.log(`${subscribe ? 'one subscriber per stream' : 'no subscriber'}: ${perMessage} bytes of heap per message in history`)
process.exit(0)
