import type { FastifyRequest } from 'fastify'
import { Hub, type HubOptions } from '../src/hub/hub.js'
import type { Outgoing, ServerMessage } from '../src/hub/protocol.js'
import type { JoinedStream, SessionSink } from '../src/hub/session.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { MemorySessionStore } from '../src/session-store.js'

/** A sink that records what a session sends. */
export class RecordingSink implements SessionSink {
  readonly outgoing: Outgoing[] = []
  send(outgoing: Outgoing): void {
    this.outgoing.push(outgoing)
  }
  get messages(): ServerMessage[] {
    return this.outgoing.map((o) => o.message)
  }
  types(): Array<string | undefined> {
    return this.messages.map((m) => ('type' in m ? m.type : undefined) ?? 'data')
  }
  clear(): void {
    this.outgoing.length = 0
  }
}

/** A request with a URL, for what reads the query string (JWT, ping options). */
export const fakeRequest = (url: string, headers: Record<string, string> = {}): FastifyRequest =>
  ({ headers, query: {}, url, raw: { url } }) as unknown as FastifyRequest

export const request = (headers: Record<string, string> = {}): FastifyRequest => ({ headers, query: {} }) as unknown as FastifyRequest

export function makeHub(t: { teardown(fn: () => unknown): void }, options: Partial<HubOptions> = {}): { hub: Hub; broker: MemoryBroker; store: MemorySessionStore } {
  const broker = (options.broker as MemoryBroker | undefined) ?? new MemoryBroker()
  const store = (options.store as MemorySessionStore | undefined) ?? new MemorySessionStore()
  const hub = new Hub({ ...options, broker, store })
  t.teardown(async () => {
    hub.close()
    await store.close()
    await broker.close()
  })
  return { hub, broker, store }
}

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** The members of a stream's fan-out on a hub (its private table), for tests that pin what happens to one of them. */
export function fanoutMembers(hub: Hub, stream: string): JoinedStream[] {
  const fanout = (hub as unknown as { fanout: Map<string, { members: Set<JoinedStream> }> }).fanout
  return [...(fanout.get(stream)?.members ?? [])]
}
