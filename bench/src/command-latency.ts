/**
 * Command round trip with a held poll (issue 13): a long-polling client has a
 * poll held and sends a command (`perform`, answered by a transmission), as
 * AnyCable's client does by aborting the held poll and POSTing the command;
 * measured from sending the command to reading its reply. One node, and two
 * nodes on Redis (held poll on A, command to B), next to the same command
 * over an SSE POST stream (`remoteCommands`, command POSTed with `X-RT-SID`).
 * Nodes are Fastify apps in this process with their own Redis connections, as
 * two processes would have. Bounded in count; writes results/command-latency.md
 * and .json. Not part of CI.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { cpus, hostname } from 'node:os'
import { rtCore, type Channel } from '@rt/core'
import { rtLongPoll } from '@rt/long-poll'
import { RedisBroker, RedisSessionStore } from '@rt/redis'
import { rtSse } from '@rt/sse'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'

const COMMANDS = process.argv.includes('--quick') ? 20 : 200
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const keyPrefix = `rt-bench-cmd-${randomBytes(4).toString('hex')}:`
const ECHO = JSON.stringify({ channel: 'Echo' })
const Echo: Channel = { actions: { echo: (ctx, data) => ctx.transmit({ seq: data.seq }) } }
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const perform = (seq: number): string => JSON.stringify({ command: 'message', identifier: ECHO, data: JSON.stringify({ action: 'echo', seq }) })

interface Node { app: FastifyInstance; base: string }

async function node(flushInterval: number): Promise<Node> {
  const broker = new RedisBroker({ url, keyPrefix })
  const sessionStore = new RedisSessionStore({ url, keyPrefix })
  const app = Fastify()
  app.addHook('onClose', async () => {
    await broker.close()
    await sessionStore.close()
  })
  await app.register(rtCore, { broker, sessionStore, channels: { Echo } })
  await app.register(rtLongPoll, { flushInterval, pollInterval: 15 })
  await app.register(rtSse, { remoteCommands: true, pingInterval: 60_000 })
  return { app, base: await app.listen({ port: 0, host: '127.0.0.1' }) }
}

async function lp(base: string, id: string | undefined, body: string): Promise<{ id: string; text: string }> {
  const response = await fetch(`${base}/lp`, { method: 'POST', body, headers: id === undefined ? {} : { 'x-anycable-poll-id': id } })
  return { id: response.headers.get('x-anycable-poll-id') ?? '', text: await response.text() }
}

/** Long polling: a poll held on `holder`, then the command to `target`; ms until the command's answer is read. */
async function longPolling(holder: Node, target: Node): Promise<number[]> {
  const { id } = await lp(holder.base, undefined, JSON.stringify({ command: 'subscribe', identifier: ECHO }))
  const times: number[] = []
  for (let seq = 1; seq <= COMMANDS; seq++) {
    const before = (await holder.app.rt.hub.store.get(id))!.lease
    const held = lp(holder.base, id, '')
    // Until this poll holds the session (it claimed a newer lease and saved it as not yet settled).
    for (;;) {
      const state = await holder.app.rt.hub.store.get(id)
      if (state !== undefined && state.lease > before && state.lease > (state.transport as { settled: number }).settled) break
      await sleep(2)
    }
    const started = performance.now()
    const answer = await lp(target.base, id, perform(seq))
    if (!answer.text.includes(`"seq":${seq}`)) throw new Error(`command ${seq}: no reply in ${answer.text}`)
    times.push(performance.now() - started)
    await held
  }
  return times
}

/** SSE: a POST stream on `holder`, commands POSTed to `target` with the stream's sid; ms until the reply arrives on the stream. */
async function sse(holder: Node, target: Node): Promise<number[]> {
  let buffer = ''
  let sid: string | undefined
  const replies = new Map<number, () => void>()
  const stream = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    const req = httpRequest(`${holder.base}/events`, { method: 'POST', agent: false }, resolve)
    req.on('error', reject)
    req.end(JSON.stringify({ command: 'subscribe', identifier: ECHO }))
  })
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    buffer += chunk
    let newline: number
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline)
      buffer = buffer.slice(newline + 1)
      if (!line.startsWith('data: ')) continue
      const message = JSON.parse(line.slice(6)) as { type?: string; sid?: string; message?: { seq?: number } }
      if (message.type === 'welcome') sid = message.sid
      const seq = message.message?.seq
      if (seq !== undefined) replies.get(seq)?.()
    }
  })
  while (sid === undefined) await sleep(5)
  const times: number[] = []
  try {
    for (let seq = 1; seq <= COMMANDS; seq++) {
      const started = performance.now()
      const replied = new Promise<void>((resolve) => replies.set(seq, resolve))
      const response = await fetch(`${target.base}/events`, { method: 'POST', headers: { 'x-rt-sid': sid }, body: perform(seq) })
      if (response.status !== 202) throw new Error(`command ${seq}: ${response.status}`)
      await replied
      times.push(performance.now() - started)
    }
  } finally {
    stream.destroy()
  }
  return times
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN

interface Row { transport: string; nodes: string; p50: number; p99: number; max: number }

const rows: Row[] = []
const record = (transport: string, nodes: string, times: number[]): void => {
  const sorted = [...times].sort((a, b) => a - b)
  rows.push({ transport, nodes, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? NaN })
}

try {
  for (const flushInterval of (process.env.RT_FLUSH === undefined ? [500, 0] : [Number(process.env.RT_FLUSH)])) {
    const a = await node(flushInterval)
    const b = await node(flushInterval)
    try {
      record(`long polling, flushInterval ${flushInterval} ms${flushInterval === 500 ? ' (default)' : ''}`, 'one node (Redis)', await longPolling(a, a))
      record(`long polling, flushInterval ${flushInterval} ms${flushInterval === 500 ? ' (default)' : ''}`, 'two nodes on Redis (held on A, command to B)', await longPolling(a, b))
      if (flushInterval === 0) {
        record('SSE POST stream + command POST', 'one node (Redis)', await sse(a, a))
        record('SSE POST stream + command POST', 'two nodes on Redis (stream on A, command to B)', await sse(a, b))
      }
    } finally {
      await a.app.close()
      await b.app.close()
    }
  }
  const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 1 })
  const lines = [
    `${hostname()}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}, ${new Date().toISOString()}, ${COMMANDS} commands per row, Redis on loopback, nodes in one process with their own Redis connections.`,
    '',
    '| transport | nodes | p50 ms | p99 ms | max ms |',
    '|---|---|---:|---:|---:|',
    ...rows.map((r) => `| ${r.transport} | ${r.nodes} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.max)} |`),
    ''
  ]
  const out = new URL('../results/command-latency', import.meta.url)
  writeFileSync(`${out.pathname}.md`, lines.join('\n'))
  writeFileSync(`${out.pathname}.json`, JSON.stringify({ commands: COMMANDS, rows }, null, 2) + '\n')
  console.log(lines.join('\n'))
} finally {
  const redis = new Redis(url)
  const keys = await redis.keys(`${keyPrefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
}
