import { rtCore, type RtCoreOptions } from '@rt/core'
import { http2UnderTest, testFastify, useProtocolForFetch } from '@rt/core/testing'
import type { FastifyInstance } from 'fastify'
import { rtLongPoll, type LongPollOptions } from '../src/index.js'

// RT_TEST_HTTP2=1 (the second run of `npm test`): apps serve HTTP/2 over TLS only, and fetch negotiates h2.
await useProtocolForFetch()

/** Whether this run is the HTTP/2 one (RT_TEST_HTTP2=1): the few protocol-specific assertions branch on it. */
export const http2 = http2UnderTest()

export interface Served {
  app: FastifyInstance
  url: string
}

/** Short intervals for tests; tests that need the defaults pass their own. */
export const FAST: LongPollOptions = { pollInterval: 2, flushInterval: 20, keepaliveTimeout: 5 }

/** An app with @rt/core and @rt/long-poll listening on a real socket (HTTP/2 with TLS when RT_TEST_HTTP2=1). */
export async function serve(
  t: { teardown(fn: () => unknown): void },
  lp: LongPollOptions = FAST,
  core: RtCoreOptions = {}
): Promise<Served> {
  // Fetch (undici) may leave a connection that never carried a request after an abort; close it with the app.
  const app = testFastify({ logger: false, forceCloseConnections: true })
  await app.register(rtCore, { publicStreams: true, broadcastKey: 'key', ...core })
  await app.register(rtLongPoll, lp)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, url: `${url}${lp.path ?? '/lp'}` }
}

export interface LpResponse {
  status: number
  headers: Headers
  text: string
  lines: Array<Record<string, unknown>>
  pollId: string | null
}

/** One POST to the long-polling endpoint. */
export async function post(url: string, body?: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<LpResponse> {
  const init: RequestInit = { method: 'POST', headers }
  if (body !== undefined) init.body = body
  if (signal !== undefined) init.signal = signal
  const response = await fetch(url, init)
  const text = await response.text()
  return {
    status: response.status,
    headers: response.headers,
    text,
    lines: text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>),
    pollId: response.headers.get('x-anycable-poll-id')
  }
}

export const poll = (url: string, id: string, body?: string, signal?: AbortSignal): Promise<LpResponse> =>
  post(url, body, { 'x-anycable-poll-id': id }, signal)

/** A `$pubsub` identifier for a public stream. */
export const pubsub = (stream: string): string => JSON.stringify({ channel: '$pubsub', stream_name: stream })

export const subscribe = (identifier: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ command: 'subscribe', identifier, ...extra })

/** Connects and subscribes to public streams; returns the poll id. */
export async function connectTo(url: string, streams: string[] = []): Promise<{ id: string; response: LpResponse }> {
  const response = await post(url, streams.map((stream) => subscribe(pubsub(stream))).join('\n'))
  if (response.status !== 200 || response.pollId === null) throw new Error(`connect failed: ${response.status} ${response.text}`)
  return { id: response.pollId, response }
}

/** The payloads of broadcast lines, in order. */
export const payloads = (lines: Array<Record<string, unknown>>): unknown[] =>
  lines.filter((line) => line.type === undefined && 'message' in line).map((line) => line.message)

export const types = (lines: Array<Record<string, unknown>>): unknown[] => lines.map((line) => line.type ?? 'data')

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves when `check` holds, polling every few ms (never a timing assertion: it waits for a state). */
export async function until(check: () => boolean | Promise<boolean>, what = 'condition'): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return
    await sleep(5)
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Active timers of this process (Node's own bookkeeping). */
export const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
