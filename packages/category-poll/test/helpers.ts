import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { MemoryBroker, rtCore, type MemoryBrokerOptions, type RtCoreOptions, type StreamListener } from '@rt/core'
import { http2UnderTest, testFastify, useProtocolForFetch } from '@rt/core/testing'
import { categoryPoll, type CategoryPollOptions } from '../src/index.js'

// RT_TEST_HTTP2=1 (the second run of `npm test`): apps serve HTTP/2 over TLS only, and fetch negotiates h2.
await useProtocolForFetch()

/** Whether this run is the HTTP/2 one (RT_TEST_HTTP2=1): the few protocol-specific assertions branch on it. */
export const http2 = http2UnderTest()

/** `Fastify(options)` over the protocol of this run (HTTP/2 with TLS when RT_TEST_HTTP2=1). */
export const fastify = testFastify

export interface Server {
  app: FastifyInstance
  /** Origin, e.g. http://127.0.0.1:1234 (https:// over HTTP/2) */
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
  const app = testFastify()
  await app.register(rtCore, { history: { historyLimit: 5000, historyTtl: Infinity }, ...core })
  await app.register(categoryPoll, options)
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    const closing = app.close()
    // Held requests are answered in preClose; what is left are idle sockets a client (undici) opened
    // and may keep for seconds: do not let them hold the test up. (HTTP/2 sessions: @rt/core closes them.)
    await new Promise((resolve) => setTimeout(resolve, 50))
    if (typeof app.server.closeAllConnections === 'function') app.server.closeAllConnections()
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
/**
 * Options for tests that read held requests off `CountingBroker.listeners`: a
 * category unsubscribes with its last held request instead of lingering.
 */
export const NO_LINGER = { subscriptionLingerMs: 0 } as const

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
