// Server CPU per subscribe request answered from history (20 events), A/B in one process: rt apps built with
// copies of @rt/category-poll (each a directory with its package.json and dist/), and floors sending the same
// bytes, hit by alternating autocannon bursts; CPU per request of each burst from process.cpuUsage.
//   node tools/category-poll-ab.mjs <dir>[+floor],...,floor,node,node1 [rounds] [seconds] [connections]
// `<dir>+floor`: a plain route inside that rt app; `floor`: a Fastify route; `node` / `node1`: bare node:http
// with golongpoll's five headers / content-type only. Used for bench/README.md's category polling section.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { rtCore } from '@rt/core'
const require = createRequire(import.meta.url)
const [builds, rounds = '6', seconds = '2', conns = '10'] = process.argv.slice(2)
const apps = []
const HEADERS = { 'content-type': 'application/json', 'x-content-type-options': 'nosniff', 'cache-control': 'no-cache, no-store, must-revalidate', pragma: 'no-cache', expires: '0' }
for (const name of builds.split(',')) {
  if (name === 'node' || name === 'node1') {
    // bare node:http sending the same bytes, with golongpoll's five headers or with content-type only (the ceiling's)
    const { createServer } = await import('node:http')
    const headers = name === 'node' ? HEADERS : { 'content-type': 'application/json' }
    let requests = 0
    const server = createServer((request, response) => { requests++; response.writeHead(200, { ...headers, 'content-length': apps[0].body.length }); response.end(apps[0].body) })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    apps.push({ name, url: `http://127.0.0.1:${server.address().port}/events?category=bench-3&timeout=30&since_time=1&last_id=x`, count: () => requests, samples: [] })
    continue
  }
  if (name === 'floor' || name === 'floor-async') {
    // A Fastify route answering the same bytes with the same headers: what being a Fastify route costs.
    const app = Fastify({ logger: false })
    let requests = 0
    app.server.on('request', () => { requests++ })
    if (name === 'floor') app.get('/events', (request, reply) => { void reply.headers(HEADERS).code(200).send(apps[0].body) })
    else app.get('/events', (request, reply) => { (async () => { await null; await null; await null; void reply.headers(HEADERS).code(200).send(apps[0].body) })() })
    await app.listen({ port: 0, host: '127.0.0.1' })
    apps.push({ name, url: `http://127.0.0.1:${app.server.address().port}/events?category=bench-3&timeout=30&since_time=1&last_id=x`, count: () => requests, samples: [] })
    continue
  }
  const inRt = name.endsWith('+floor')
  const plugin = await import(pathToFileURL(resolve(name.replace(/\+floor$/, ''), 'dist/index.js')).href)
  const app = Fastify({ logger: false })
  await app.register(rtCore, { publicStreams: true, history: { historyLimit: 10000, historyTtl: 600 } })
  await app.register(plugin.rtCategoryPoll)
  // The floor route in rt's app: what the app around the route costs.
  let floorBody
  if (inRt) app.get('/floor', (request, reply) => { void reply.headers(HEADERS).code(200).send(floorBody) })
  let requests = 0
  app.server.on('request', () => { requests++ })
  await app.listen({ port: 0, host: '127.0.0.1' })
  let first
  for (let i = 0; i < 21; i++) { const m = await app.rt.publish('bench-3', { s: i, t: 1234567.123, pad: 'x'.repeat(40) }); first ??= m }
  const query = `category=bench-3&timeout=30&since_time=1&last_id=${plugin.categoryEventId(first)}`
  const url = `http://127.0.0.1:${app.server.address().port}/events?${query}`
  floorBody = Buffer.from(await (await fetch(url)).arrayBuffer())
  apps.push({ name, url: inRt ? url.replace('/events?', '/floor?') : url, body: floorBody, count: () => requests, samples: [] })
}
function burst (app) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [require.resolve('autocannon/autocannon.js'), '-c', conns, '-p', '1', '-d', seconds, app.url], { stdio: 'ignore' })
    let cpu, n
    // autocannon needs ~0.5 s to load: measure from the first requests on.
    const timer = setInterval(() => { if (cpu === undefined && app.count() > 0) { cpu = process.cpuUsage(); n = app.count() } }, 5)
    child.on('exit', () => { clearInterval(timer); const c = process.cpuUsage(cpu); resolve((c.user + c.system) / (app.count() - n)) })
  })
}
for (const app of apps) await burst(app)
for (let r = 0; r < Number(rounds); r++) for (const app of (r % 2 ? [...apps].reverse() : apps)) app.samples.push(await burst(app))
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1]
for (const app of apps) console.log(`${app.name}: median ${med(app.samples).toFixed(1)} µs CPU/req (${app.samples.map((x) => x.toFixed(0)).join(' / ')})`)
process.exit(0)
