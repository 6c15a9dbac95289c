import type { Test } from 'tap'
import { BrokerUnavailableError, type Broker } from '../broker.js'
import type { SessionStore } from '../session-store.js'
import { UNAVAILABLE_BODY, UNAVAILABLE_RETRY_AFTER } from '../unavailable.js'

const down = (what: string) => (): Promise<never> => Promise.reject(new BrokerUnavailableError(`${what} failed: test backend at 10.0.0.1:6379 is down`))

/**
 * A broker whose backend is unreachable, as a Redis broker during an outage:
 * every call rejects with `BrokerUnavailableError` (whose message names an
 * internal address, which must never reach a client); `subscribe` succeeds
 * and delivers nothing, as a real broker that catches up once it is back.
 */
export function unavailableBroker(): Broker {
  return {
    publish: down('publish'),
    subscribe: () => () => undefined,
    history: down('history'),
    position: down('position'),
    remove: down('remove'),
    close: () => Promise.resolve()
  }
}

/** A session store whose backend is unreachable: every call but `close` rejects with `BrokerUnavailableError`. */
export function unavailableStore(): SessionStore {
  return {
    get: down('session get'),
    create: down('session create'),
    claim: down('session claim'),
    save: down('session save'),
    delete: down('session delete'),
    close: () => Promise.resolve()
  }
}

/** What {@link assertUnavailable} reads of an answer (from `fetch`, `inject` or a raw request). */
export interface AnsweredRequest {
  status: number
  retryAfter: string | null | undefined
  body: string
}

/**
 * Asserts that an answer is an outage's 503: `Retry-After`, and exactly the
 * short JSON reason (by default core's), so no internal detail leaks.
 */
export function assertUnavailable(t: Test, answered: AnsweredRequest, what: string, body: unknown = UNAVAILABLE_BODY): void {
  t.equal(answered.status, 503, `${what}: 503`)
  t.equal(answered.retryAfter, String(UNAVAILABLE_RETRY_AFTER), `${what}: Retry-After`)
  t.same(JSON.parse(answered.body), body, `${what}: a short reason, no internal detail`)
}
