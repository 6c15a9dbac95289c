import { readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import tap, { type Test } from 'tap'
import { rtCore, type RtCoreOptions } from '@rt/core'
import { rtLongPoll } from '@rt/long-poll'
import { rtSse } from '@rt/sse'

export const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** A test that drives Chromium; without it, a failure, never a skip (in CI, .ci/run installs it). */
export function chromiumTest(name: string, fn: (t: Test) => Promise<void>): void {
  if (existsSync(executablePath)) void tap.test(name, fn)
  else tap.fail(`Chromium not found at ${executablePath}: apt-get install chromium`)
}

/** The built @rt/client, served to the pages at /rt/. */
const clientRoot = dirname(fileURLToPath(import.meta.resolve('@rt/client')))

type Teardown = { teardown(fn: () => unknown): void }

export async function launch(t: Teardown): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close())
  return browser
}

/** Event streams (SSE connections, not command POSTs) the server holds now, at most, and in all. */
export interface StreamCount {
  open: number
  max: number
  total: number
}

/** Counts the event streams the server holds; call before the app listens. */
export function countStreams(app: FastifyInstance): StreamCount {
  const count: StreamCount = { open: 0, max: 0, total: 0 }
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/events') || request.headers['x-rt-sid'] !== undefined) return
    count.open++
    count.total++
    count.max = Math.max(count.max, count.open)
    reply.raw.once('close', () => { count.open-- })
  })
  return count
}

/**
 * A real rt server (SSE and long polling, public streams) that also serves a blank page at / and the
 * client's modules at /rt/, so that pages of one origin can import `/rt/index.js` or `/rt/shared-tabs.js`.
 */
export async function startRtServer(t: Teardown, core: RtCoreOptions = {}, setup?: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance; url: string; streams: StreamCount }> {
  const app = Fastify({ forceCloseConnections: true })
  await app.register(rtCore, { publicStreams: true, ...core })
  await app.register(rtSse, { pingInterval: 500 })
  await app.register(rtLongPoll, { pollInterval: 2, flushInterval: 20, keepaliveTimeout: 5 })
  serveClient(app)
  const streams = countStreams(app)
  setup?.(app)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, url, streams }
}

/** A blank page at /blank and the client's modules at /rt/. */
export function serveClient(app: FastifyInstance): void {
  app.get('/blank', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>rt tab</title>'))
  app.get<{ Params: { file: string } }>('/rt/:file', async (request, reply) => {
    if (!/^[\w-]+\.js$/.test(request.params.file)) return reply.code(404).send()
    return reply.type('text/javascript').send(await readFile(join(clientRoot, request.params.file)))
  })
}

/** What a tab set up with `setUpTab` keeps on `window.rt`. */
export interface TabState {
  /** stream → the offsets received, in order. */
  got: Record<string, number[]>
  connected: number
  consumer: { isLeader?: boolean; transport?: string; close(): void }
}

/**
 * Opens a tab at `url`/blank that subscribes to public `streams` with `createSharedConsumer` (when the
 * options share across tabs) or `createConsumer`, recording what it receives on `window.rt`.
 */
export async function openTab(
  context: BrowserContext,
  url: string,
  streams: string[],
  options: Record<string, unknown>,
  onError: (message: string) => void,
  where: { page: string; client: string } = { page: '/blank', client: '/rt' }
): Promise<Page> {
  const page = await context.newPage()
  page.on('pageerror', (error) => onError(error.message))
  await page.goto(`${url}${where.page}`)
  await page.evaluate(async ({ streams, options, client: base }) => {
    const shared = 'shareAcrossTabs' in options
    const client = await import(`${base}/${shared ? 'shared-tabs' : 'index'}.js`) as Record<string, (options: unknown) => unknown>
    const create = shared ? client.createSharedConsumer! : client.createConsumer!
    type Consumer = TabState['consumer'] & { subscribe(target: unknown, callbacks: unknown): unknown }
    const consumer = create({ url: location.origin, ...options }) as Consumer
    const state: TabState = { got: {}, connected: 0, consumer }
    ;(window as unknown as { rt: TabState }).rt = state
    for (const stream of streams) {
      consumer.subscribe({ stream }, {
        connected: () => { state.connected++ },
        received: (_message: unknown, meta: { stream: string; offset: number }) => { (state.got[meta.stream] ??= []).push(meta.offset) }
      })
    }
  }, { streams, options, client: where.client })
  return page
}

/** Reads `window.rt` of a tab (without the consumer). */
export const tabState = (page: Page): Promise<Omit<TabState, 'consumer'> & { isLeader: boolean | undefined; transport: string | undefined }> =>
  page.evaluate(() => {
    const { got, connected, consumer } = (window as unknown as { rt: TabState }).rt
    return { got, connected, isLeader: consumer.isLeader, transport: consumer.transport }
  })

/** Waits (bounded) until a tab's state passes `check`, which runs in the page on `window.rt`. */
export async function waitForTab(page: Page, check: string, timeout = 20_000): Promise<void> {
  await page.waitForFunction(`(() => { const rt = window.rt; return ${check} })()`, undefined, { timeout, polling: 50 })
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
