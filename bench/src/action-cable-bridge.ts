/**
 * Added latency of @rt/action-cable: one broadcast from a real Action Cable 6.1
 * server (the test fixture under puma) reaches 1,000 bridged SSE clients (rt in
 * its own process, one upstream socket per session) and 1,000 direct WebSocket
 * clients of the same upstream, in the same run, so both see the same load.
 * Also: rt's memory per bridged session. `pnpm run action-cable` (not in CI).
 */
import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import Fastify from 'fastify'
import { rtCore } from '@rt/core'
import { rtSse } from '@rt/sse'
import { rtActionCable } from '@rt/action-cable'
import { startCable } from '../../packages/action-cable/test/fixture/cable.mjs'

const CLIENTS = Number(process.env.CLIENTS ?? 1000)
const BROADCASTS = Number(process.env.BROADCASTS ?? 20)
const IDENTIFIER = JSON.stringify({ channel: 'ChatChannel', room: 'bench' })

async function server(url: string, origin: string): Promise<void> {
  const app = Fastify()
  await app.register(rtCore)
  await app.register(rtActionCable, { url, origin })
  await app.register(rtSse, { pingInterval: 60_000 })
  app.get('/rss', async () => {
    global.gc?.()
    return { rss: process.memoryUsage().rss, sockets: app.rtActionCable.socketCount }
  })
  const listening = await app.listen({ port: 0, host: '127.0.0.1' })
  process.stdout.write(`LISTENING ${listening}\n`)
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

async function main(): Promise<void> {
  const cable = await startCable({ LOG_LEVEL: 'error' })
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), 'server', cable.url, cable.origin], { stdio: ['ignore', 'pipe', 'inherit'] })
  const base = await new Promise<string>((resolve) => {
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += String(chunk)
      const match = /LISTENING (\S+)/.exec(out)
      if (match !== null) resolve(match[1]!)
    })
  })
  const rss = async (): Promise<number> => ((await (await fetch(`${base}/rss`)).json()) as { rss: number }).rss
  const latencies = { direct: [] as number[], bridged: [] as number[] }
  const onPayload = (kind: 'direct' | 'bridged', message: unknown): void => {
    const sent = (message as { sent?: number }).sent
    if (typeof sent === 'number') latencies[kind].push(performance.timeOrigin + performance.now() - sent)
  }

  // Direct clients: the browser's path, a WebSocket each, subscribe and wait for the confirmation.
  const direct: WebSocket[] = []
  for (let i = 0; i < CLIENTS; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, CLIENTS - i) }, (_, j) => new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(cable.url, ['actioncable-v1-json'], { headers: { cookie: `user=d${i + j}` }, origin: cable.origin })
      direct.push(ws)
      ws.on('error', reject)
      ws.on('message', (data) => {
        const frame = JSON.parse(String(data)) as { type?: string; message?: unknown }
        if (frame.type === 'welcome') ws.send(JSON.stringify({ command: 'subscribe', identifier: IDENTIFIER }))
        else if (frame.type === 'confirm_subscription') resolve()
        else if (frame.type === undefined) onPayload('direct', frame.message)
      })
    })))
  }

  const idle = await rss()
  // Bridged clients: EventSource-style GETs through rt, which opens one upstream socket per session.
  const bridged: Array<() => void> = []
  for (let i = 0; i < CLIENTS; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, CLIENTS - i) }, (_, j) => new Promise<void>((resolve, reject) => {
      const req = request(`${base}/events?identifier=${encodeURIComponent(IDENTIFIER)}`, { headers: { cookie: `user=b${i + j}` }, agent: false }, (response) => {
        if (response.statusCode !== 200) return reject(new Error(`status ${response.statusCode}`))
        response.setEncoding('utf8')
        let buffer = ''
        response.on('data', (chunk: string) => {
          buffer += chunk
          let end: number
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            if (block.includes('event: confirm_subscription')) resolve()
            const data = /^data: (.*)$/m.exec(block)?.[1]
            if (data !== undefined && !block.includes('event: ')) onPayload('bridged', JSON.parse(data))
          }
        })
      })
      req.on('error', reject)
      req.end()
      bridged.push(() => req.destroy())
    })))
  }
  const loaded = await rss()

  for (let n = 0; n < BROADCASTS; n++) {
    const expected = (n + 1) * CLIENTS
    await cable.broadcast({ room: 'bench', data: { sent: Date.now(), n } })
    const deadline = Date.now() + 20_000
    while ((latencies.direct.length < expected || latencies.bridged.length < expected) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const report = (kind: 'direct' | 'bridged'): string => {
    const sorted = [...latencies[kind]].sort((a, b) => a - b)
    return `${sorted.length} / ${CLIENTS * BROADCASTS} delivered, p50 ${percentile(sorted, 0.5).toFixed(1)} ms, p99 ${percentile(sorted, 0.99).toFixed(1)} ms`
  }
  console.log(`clients: ${CLIENTS} direct + ${CLIENTS} bridged, ${BROADCASTS} broadcasts`)
  console.log(`direct WebSocket: ${report('direct')}`)
  console.log(`bridged SSE:      ${report('bridged')}`)
  console.log(`rt RSS: ${(idle / 1e6).toFixed(1)} MB idle, ${(loaded / 1e6).toFixed(1)} MB with ${CLIENTS} bridged sessions: ${((loaded - idle) / CLIENTS / 1024).toFixed(1)} KB per session`)
  for (const close of bridged) close()
  for (const ws of direct) ws.terminate()
  child.kill()
  await cable.stop()
}

if (process.argv[2] === 'server') await server(process.argv[3]!, process.argv[4]!)
else await main()
