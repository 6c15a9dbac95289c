import Fastify, { type FastifyInstance } from 'fastify'
import { rtCore, type RtCoreOptions } from '@rt/core'
import { rtSse } from '@rt/sse'
import { rtLongPoll } from '@rt/long-poll'
import { rtSessions } from '@rt/sessions'
import { rtActionCable, upstreamCounters, type RtActionCableOptions } from '../src/index.js'
import type { Cable } from './fixture/cable.mjs'

export { open, subscribed, json, type EventStream, type SseEvent } from './sse-client.js'

export const LOBBY = JSON.stringify({ channel: 'ChatChannel', room: 'lobby' })
export const room = (name: string): string => JSON.stringify({ channel: 'ChatChannel', room: name })

export interface BridgeApp {
  app: FastifyInstance
  base: string
}

/** rt with the bridge to `cable`, SSE at /events, long polling at /lp and the session API at /sessions, on a real socket. */
export async function startBridge(
  t: { teardown(fn: () => unknown): void },
  cable: Cable,
  options: Partial<RtActionCableOptions> = {},
  core: RtCoreOptions = {}
): Promise<BridgeApp> {
  const app = Fastify()
  await app.register(rtCore, core)
  await app.register(rtActionCable, { url: cable.url, origin: cable.origin, forwardHeaders: ['cookie'], ...options })
  await app.register(rtSse, { pingInterval: 60_000 })
  await app.register(rtLongPoll, { pollInterval: 2, flushInterval: 10, keepaliveTimeout: 1 })
  await app.register(rtSessions, { prefix: '/sessions' })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, base }
}

/** One long-poll request: its status, poll id and JSON lines. */
export async function poll(base: string, options: { id?: string; cookie?: string; lines?: unknown[] } = {}): Promise<{ status: number; id: string | null; messages: Array<Record<string, unknown>> }> {
  const headers: Record<string, string> = {}
  if (options.id !== undefined) headers['x-anycable-poll-id'] = options.id
  if (options.cookie !== undefined) headers.cookie = options.cookie
  const response = await fetch(`${base}/lp`, { method: 'POST', headers, body: (options.lines ?? []).map((line) => JSON.stringify(line)).join('\n') })
  const text = await response.text()
  const messages = text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>)
  return { status: response.status, id: response.headers.get('x-anycable-poll-id'), messages }
}

/** Polls until `match` holds for a message (bounded: fails clearly after `polls` requests). */
export async function pollUntil(base: string, id: string, match: (message: Record<string, unknown>) => boolean, polls = 20): Promise<Array<Record<string, unknown>>> {
  const seen: Array<Record<string, unknown>> = []
  for (let i = 0; i < polls; i++) {
    const answer = await poll(base, { id })
    if (answer.status !== 200) throw new Error(`poll answered ${answer.status}: ${JSON.stringify(answer.messages)}`)
    seen.push(...answer.messages)
    if (answer.messages.some(match)) return seen
  }
  throw new Error(`no matching message in ${polls} polls; saw ${JSON.stringify(seen)}`)
}

export const subscribe = (identifier: string): Record<string, string> => ({ command: 'subscribe', identifier })
export const speak = (identifier: string, text: string): Record<string, string> =>
  ({ command: 'message', identifier, data: JSON.stringify({ action: 'speak', text }) })

/** Waits (bounded) until `condition` holds; fails with `what`. */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Upstream sockets and timers of every bridge in this process. */
export const counters = (): { sockets: number; timers: number } => ({ ...upstreamCounters })
