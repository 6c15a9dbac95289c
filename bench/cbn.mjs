// CPU per long-poll connect, in process (inject: no sockets), for comparing builds.
import Fastify from 'fastify'
import { rtCore } from '@rt/core'
import { rtLongPoll } from '@rt/long-poll'
const app = Fastify({ logger: false })
await app.register(rtCore, { publicStreams: true, logger: false })
await app.register(rtLongPoll, { pollInterval: 10 })
await app.ready()
if (process.env.NOPARK) app.rt.hub.store.keep = undefined
const body = JSON.stringify({ command: 'subscribe', identifier: JSON.stringify({ channel: '$pubsub', stream_name: 'bench-0' }) }) + '\n'
async function batch(n) { const all = []; for (let i = 0; i < n; i++) all.push(app.inject({ method: 'POST', url: '/lp', headers: { 'content-type': 'text/plain' }, payload: body })); const r = await Promise.all(all); if (!r[0].body.includes('confirm_subscription')) throw new Error(r[0].body) }
for (let i = 0; i < 5; i++) await batch(100)
const c0 = process.cpuUsage(); const t0 = Date.now()
for (let i = 0; i < Number(process.env.N ?? 100); i++) await batch(100)
const c = process.cpuUsage(c0)
console.log(((c.user + c.system) / 10000).toFixed(1), 'µs CPU per connect', Date.now() - t0, 'ms')
await app.close()
