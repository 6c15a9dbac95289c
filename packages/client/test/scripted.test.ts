import t from 'tap'
import { createConsumer } from '../src/index.js'
import { until } from './server.js'

/** A fetch that answers from a script: each call takes the next answer for its path. */
function scripted(answers: Record<string, Array<() => Response>>): { fetch: typeof fetch; calls: Array<{ path: string; search: string; body: string; headers: Record<string, string> }> } {
  const calls: Array<{ path: string; search: string; body: string; headers: Record<string, string> }> = []
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const { pathname: path, search } = new URL(String(input))
    calls.push({ path, search, body: String(init?.body ?? ''), headers: (init?.headers ?? {}) as Record<string, string> })
    const next = answers[path]?.shift()
    if (next === undefined) return new Promise<Response>(() => undefined)
    return next()
  }) as typeof fetch
  return { fetch: fetchImpl, calls }
}

const sse = (text: string): (() => Response) => () => new Response(text, { status: 200, headers: { 'content-type': 'text/event-stream' } })
const frame = (message: unknown): string => `data: ${JSON.stringify(message)}\n\n`
const id = '{"channel":"$pubsub","stream_name":"s"}'

t.test('duplicates by offset are dropped; stray and unknown messages are ignored', async (t) => {
  const received: unknown[] = []
  const { fetch } = scripted({
    '/events': [sse([
      frame({ type: 'welcome', sid: 'x' }),
      'data: not json\n\n',
      frame({ type: 'confirm_subscription', identifier: 'unknown' }),
      frame({ type: 'reject_subscription', identifier: 'unknown' }),
      frame({ type: 'ping', message: 1 }),
      frame({ identifier: 'unknown', message: 'nobody' }),
      frame({ identifier: id, message: 'one', stream_id: 's', epoch: 'e', offset: 1 }),
      frame({ identifier: id, message: 'one again', stream_id: 's', epoch: 'e', offset: 1 }),
      frame({ identifier: id, message: 'transmission' }),
      frame({ identifier: id, message: 'new epoch', stream_id: 's', epoch: 'f', offset: 1 })
    ].join(''))]
  })
  const rt = createConsumer({ url: 'http://rt.test/', fetch, transports: ['sse'] })
  t.teardown(() => rt.close())
  rt.subscribe({ stream: 's' }, { received: (message) => received.push(message) })
  await until(() => received.length === 3, 'messages')
  t.same(received, ['one', 'transmission', 'new epoch'])
})

t.test('a stream that ends is reconnected with the positions (default backoff)', async (t) => {
  const { fetch, calls } = scripted({
    '/events': [
      sse(frame({ type: 'welcome', sid: 'a' }) + frame({ type: 'confirm_subscription', identifier: id }) + frame({ identifier: id, message: 1, stream_id: 's', epoch: 'e', offset: 7 })),
      sse(frame({ type: 'welcome', sid: 'b' }))
    ]
  })
  const rt = createConsumer({ url: 'http://rt.test', fetch, transports: ['sse'] })
  t.teardown(() => rt.close())
  rt.subscribe({ stream: 's' })
  await until(() => calls.length === 2, 'reconnect', 5000)
  const resubscribe = JSON.parse(calls[1]!.body) as { history: { streams: Record<string, unknown>; since: number } }
  t.same(resubscribe.history.streams, { s: { offset: 7, epoch: 'e' } })
  t.type(resubscribe.history.since, 'number')
})

t.test('long polling: errors end the transport and the consumer reconnects', async (t) => {
  const ok = (body: string, pollId?: string): (() => Response) => () => new Response(body, { status: 200, headers: pollId === undefined ? {} : { 'x-anycable-poll-id': pollId } })
  const { fetch, calls } = scripted({
    '/lp': [
      ok(JSON.stringify({ type: 'welcome', sid: 'a' }) + '\n'),
      ok(JSON.stringify({ type: 'welcome', sid: 'b' }) + '\n', 'p1'),
      () => new Response('oops', { status: 500 }),
      ok(JSON.stringify({ type: 'welcome', sid: 'c' }) + '\n', 'p2')
    ]
  })
  const rt = createConsumer({ url: 'http://rt.test', fetch, transports: ['long-poll'], backoff: { min: 5, max: 10 } })
  t.teardown(() => rt.close())
  rt.subscribe({ stream: 's' })
  await until(() => calls.length >= 5, 'reconnects')
  t.same(calls.slice(0, 5).map((c) => c.headers['x-anycable-poll-id']), [undefined, undefined, 'p1', undefined, 'p2'],
    'no poll id → reconnect; a 500 on a poll → reconnect; then polling continues')
})

t.test('SSE commands that fail end the stream', async (t) => {
  const { fetch, calls } = scripted({
    '/events': [
      () => new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode(frame({ type: 'welcome', sid: 'a' }))) }), { status: 200 }),
      () => new Response('', { status: 404 })
    ]
  })
  const rt = createConsumer({ url: 'http://rt.test', fetch, transports: ['sse'], backoff: { min: 5, max: 10 } })
  t.teardown(() => rt.close())
  const subscription = rt.subscribe({ stream: 's' })
  await until(() => rt.transport === 'sse', 'open')
  subscription.perform('x')
  await until(() => calls.length >= 3, 'reopen after the failed command')
  t.equal(calls[1]!.headers['x-rt-sid'], 'a')
})

t.test('SSE: commands wait for the welcome; retry: is kept; odd failures still reconnect', async (t) => {
  const { fetch, calls } = scripted({
    '/events': [
      sse('retry: 20\n' + frame({ type: 'welcome' }) + frame({ type: 'confirm_subscription', identifier: id })),
      () => { throw 'not an Error' },
      sse(frame({ type: 'welcome', sid: 'z' }))
    ]
  })
  const rt = createConsumer({ url: 'http://rt.test', fetch, transports: ['sse'], backoff: { min: 5, max: 50 } })
  t.teardown(() => rt.close())
  const subscription = rt.subscribe({ stream: 's' })
  subscription.perform('early', { n: 1 })
  await until(() => calls.filter((c) => c.path === '/events').length >= 4, 'reconnects')
  const command = calls.find((c) => c.headers['x-rt-sid'] !== undefined)
  t.equal(command?.headers['x-rt-sid'], '', 'the queued command went out after the welcome (no sid in it: empty)')
  t.match(command?.body, /action.*early/)
  rt.useTransport('auto')
})

t.test('long polling: a 401 on a poll (session expired) reconnects; a 401 on connect stops', async (t) => {
  const ok = (body: string, pollId: string): (() => Response) => () => new Response(body, { status: 200, headers: { 'x-anycable-poll-id': pollId } })
  const { fetch, calls } = scripted({
    '/lp': [
      ok(JSON.stringify({ type: 'welcome', sid: 'a' }), 'p1'),
      () => new Response(JSON.stringify({ type: 'disconnect', reason: 'session_expired', reconnect: true }), { status: 401 }),
      ok(JSON.stringify({ type: 'welcome', sid: 'b' }), 'p2')
    ]
  })
  const rt = createConsumer({ url: 'http://rt.test', fetch, transports: ['long-poll'], backoff: { min: 5, max: 10 } })
  t.teardown(() => rt.close())
  rt.subscribe({ stream: 's' })
  await until(() => calls.length >= 4, 'reconnect after expiry')
  t.same(calls.slice(0, 4).map((c) => c.headers['x-anycable-poll-id']), [undefined, 'p1', undefined, 'p2'])
})

t.test('disconnect token_expired on an open stream: the token function is asked again and the stream reopened with it', async (t) => {
  const expired = frame({ type: 'disconnect', reason: 'token_expired', reconnect: false })
  const { fetch, calls } = scripted({
    '/events': [
      sse(frame({ type: 'welcome', sid: 'a' }) + frame({ type: 'confirm_subscription', identifier: id }) + expired),
      sse(frame({ type: 'welcome', sid: 'b' }) + expired),
      sse(frame({ type: 'welcome', sid: 'c' }))
    ]
  })
  let asked = 0
  const rt = createConsumer({ url: 'http://rt.test', fetch, transports: ['sse'], token: () => `t${++asked}` })
  t.teardown(() => rt.close())
  rt.subscribe({ stream: 's' })
  await until(() => calls.length === 3, 'two reconnects: a welcome in between allows a second refresh')
  t.same(calls.map((c) => c.search), ['?jid=t1', '?jid=t2', '?jid=t3'])

  // With a fixed token there is nothing to refresh: reconnect: false is obeyed.
  const fixed = scripted({ '/events': [sse(frame({ type: 'welcome', sid: 'a' }) + expired)] })
  const once = createConsumer({ url: 'http://rt.test', fetch: fixed.fetch, transports: ['sse'], token: 'fixed' })
  t.teardown(() => once.close())
  let disconnected = false
  once.subscribe({ stream: 's' }, { disconnected: () => { disconnected = true } })
  await until(() => disconnected, 'closed')
  t.throws(() => once.subscribe({ stream: 'more' }), /closed/)
  t.same(fixed.calls.map((c) => c.search), ['?jid=fixed'])
})
