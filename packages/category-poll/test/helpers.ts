import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { MemoryBroker, rtCore, type MemoryBrokerOptions, type RtCoreOptions, type StreamListener } from '@rt/core'
import { categoryPoll, type CategoryPollOptions } from '../src/index.js'

export interface Server {
  app: FastifyInstance
  /** Origin, e.g. http://127.0.0.1:1234 */
  origin: string
  /** Subscribe URL (prefix + path). */
  events: string
  publishUrl: string
  /** GET the subscribe URL with a query string. */
  get(query: string, init?: RequestInit): Promise<Response>
  /** golongpoll JSON of a GET. */
  json(query: string, init?: RequestInit): Promise<Record<string, unknown>>
  publish(category: string, data: unknown): Promise<void>
}

export async function start(
  t: Test,
  options: CategoryPollOptions & { prefix?: string } = {},
  core: RtCoreOptions = {}
): Promise<Server> {
  const app = Fastify()
  await app.register(rtCore, { history: { historyLimit: 5000, historyTtl: Infinity }, ...core })
  await app.register(categoryPoll, options)
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    const closing = app.close()
    // Held requests are answered in preClose; what is left are idle sockets a client (undici) opened
    // and may keep for seconds: do not let them hold the test up.
    await new Promise((resolve) => setTimeout(resolve, 50))
    app.server.closeAllConnections()
    await closing
  })
  const prefix = options.prefix ?? ''
  const events = `${origin}${prefix}${options.subscribePath ?? '/events'}`
  const get = (query: string, init?: RequestInit): Promise<Response> => fetch(`${events}?${query}`, init)
  return {
    app,
    origin,
    events,
    publishUrl: `${origin}${prefix}${options.publishPath ?? '/publish'}`,
    get,
    json: async (query, init) => (await (await get(query, init)).json()) as Record<string, unknown>,
    publish: async (category, data) => {
      await app.rt.publish(category, data)
    }
  }
}

export interface WireEvent {
  timestamp: number
  category: string
  data: unknown
  id: string
}

export const eventsOf = (body: Record<string, unknown>): WireEvent[] => (body.events as WireEvent[] | undefined) ?? []

/** Resolves once `check()` holds, polling the event loop (no fixed sleeps in assertions). */
export async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setImmediate(resolve))
}

/** A MemoryBroker that counts live listeners, to prove held requests leave none behind. */
export class CountingBroker extends MemoryBroker {
  listeners = 0
  constructor(options: MemoryBrokerOptions = {}) {
    super({ historyLimit: 5000, historyTtl: Infinity, ...options })
  }

  override subscribe(stream: string, listener: StreamListener): () => void {
    const unsubscribe = super.subscribe(stream, listener)
    this.listeners++
    let done = false
    return () => {
      if (!done) this.listeners--
      done = true
      unsubscribe()
    }
  }
}

/** Active timers of this process (held requests each own one). */
export const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
