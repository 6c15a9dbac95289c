import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { CategoryPollError, poll, publish, subscribe, type CategoryEvent } from '../src/client.js'
import { CountingBroker, start, until, NO_LINGER } from './helpers.js'

t.test('the client module imports nothing (runs in browsers as is)', async (t) => {
  const source = readFileSync(new URL('../src/client.ts', import.meta.url), 'utf8')
  t.notMatch(source, /^\s*import\s/m)
  t.notMatch(source, /\brequire\(|node:/)
})

t.test('subscribe(): events, timeouts with the server timestamp, cursors', async (t) => {
  const s = await start(t)
  const m1 = await s.app.rt.publish('farm', { pig: 'oink' })
  await s.app.rt.publish('farm', 'moo')
  const all = await subscribe({ url: s.events, category: 'farm', timeoutSeconds: 1, sinceTime: 0, headers: { 'x-any': '1' } })
  t.equal(all.status, 200)
  t.equal(all.timedOut, false)
  t.equal(all.headers.get('cache-control'), 'no-cache, no-store, must-revalidate')
  t.same(all.events.map((e) => e.data), [{ pig: 'oink' }, 'moo'], 'JSON data, not only strings')
  const after = await subscribe({ url: s.events, category: 'farm', timeoutSeconds: 1, sinceTime: m1.timestamp, lastId: all.events[0]!.id })
  t.same(after.events.map((e) => e.data), ['moo'])
  const quiet = await subscribe({ url: s.events, category: 'farm', timeoutSeconds: 1, lastId: '' })
  t.equal(quiet.timedOut, true)
  t.type(quiet.timestamp, 'number')
  t.same(quiet.events, [])
})

t.test('subscribe(): API errors are thrown, not hidden', async (t) => {
  const s = await start(t)
  await t.rejects(subscribe({ url: s.events, category: '', timeoutSeconds: 1 }),
    { name: 'CategoryPollError', status: 200, message: 'Invalid subscription category, must be 1-1024 characters long.' }, 'a 200 error body is an error')
  const strict = await start(t, { errorStatus: 400 })
  await t.rejects(subscribe({ url: strict.events, category: 'c', timeoutSeconds: 1000 }), { status: 400, message: /timeout/ }, 'and so is a 400')
  await t.rejects(subscribe({ url: `${s.origin}/nowhere`, category: 'c', timeoutSeconds: 1 }), { name: 'CategoryPollError', status: 404 })

  const odd = createServer((request, response) => {
    if (request.url?.startsWith('/html')) response.writeHead(502).end('<html>bad gateway</html>')
    else if (request.url?.startsWith('/json')) response.writeHead(200, { 'content-type': 'application/json' }).end('{"hello":"world"}')
    else if (request.url?.startsWith('/status')) response.writeHead(201).end('{}')
    else if (request.url?.startsWith('/publish')) response.writeHead(500).end('oops')
    // /hang: never answers
  })
  await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    odd.closeAllConnections()
    odd.close()
  })
  const base = `http://127.0.0.1:${(odd.address() as { port: number }).port}`
  await t.rejects(subscribe({ url: `${base}/html`, category: 'c', timeoutSeconds: 1 }), { status: 502, message: /unexpected answer \(HTTP 502\)/ })
  await t.rejects(subscribe({ url: `${base}/json`, category: 'c', timeoutSeconds: 1 }), { status: 200, message: /neither events, timeout nor error/ })
  await t.rejects(subscribe({ url: `${base}/status`, category: 'c', timeoutSeconds: 1 }), { status: 201, message: /unexpected HTTP status 201/ })
  await t.rejects(subscribe({ url: `${base}/hang`, category: 'c', timeoutSeconds: 1, graceMs: 1 }), /did not answer/, 'a client-side deadline after the server timeout')
  const aborted = new AbortController()
  aborted.abort()
  await t.rejects(subscribe({ url: `${base}/hang`, category: 'c', signal: aborted.signal }), 'an aborted signal aborts at once')
  await t.rejects(publish({ url: `${base}/publish`, category: 'c', data: 1 }), { status: 500, message: 'publish failed with HTTP 500', body: 'oops' })
})

t.test('publish(): success, API errors with status, headers kept', async (t) => {
  const s = await start(t, { enablePublish: true, publishKey: 'k' })
  await publish({ url: s.publishUrl, category: 'c', data: { any: ['json'] }, headers: { authorization: 'Bearer k' } })
  await publish({ url: s.publishUrl, category: 'c', data: 'text', headers: new Headers({ authorization: 'Bearer k', 'content-type': 'text/plain' }) })
  t.same((await s.app.rt.broker.history('c', { since: 0 })).messages.map((m) => m.data), [{ any: ['json'] }, 'text'])
  await t.rejects(publish({ url: s.publishUrl, category: 'c', data: 1 }), { name: 'CategoryPollError', status: 401, message: /Bearer/ })
  await t.rejects(publish({ url: s.publishUrl, category: 'c', data: null, headers: { authorization: 'Bearer k' } }),
    { status: 400, message: "Invalid or missing 'data' arg, must be non-nil." })
  t.ok(new CategoryPollError('x', 1, null) instanceof Error)
})

t.test('poll(): 1000 events published while polling arrive once each, in order', async (t) => {
  const s = await start(t, { maxEventBufferSize: 2000, enablePublish: true, publishKey: 'k' })
  const controller = new AbortController()
  const received: number[] = []
  const consumer = (async () => {
    for await (const event of poll<number>({ url: s.events, category: 'stream', timeoutSeconds: 5, signal: controller.signal })) {
      received.push(event.data)
      if (received.length === 1000) controller.abort()
    }
  })()
  // Wait for the first poll to be held, so that "only new events" covers the whole run.
  await until(() => (s.app.rt.broker as unknown as { streams: Map<string, unknown> }).streams.has('stream'))
  for (let i = 0; i < 1000; i++) {
    if (i % 100 === 0) await publish({ url: s.publishUrl, category: 'stream', data: i, headers: { authorization: 'Bearer k' } })
    else await s.app.rt.publish('stream', i)
  }
  await consumer
  t.same(received, Array.from({ length: 1000 }, (_, i) => i), 'no loss, no duplicate')
})

t.test('poll(): advances since_time on timeouts, aborting cancels the request in flight', async (t) => {
  const broker = new CountingBroker()
  t.teardown(() => broker.close())
  const urls: string[] = []
  const s = await start(t, { ...NO_LINGER, beforeSubscribe: (request) => { urls.push(request.url) } }, { broker })
  const seen: string[] = []
  const iterator = poll<string>({ url: s.events, category: 'slow', timeoutSeconds: 1 })
  const next = iterator.next()
  // Let the first poll time out, then publish.
  await until(() => urls.length >= 2)
  await until(() => broker.listeners === 1)
  await s.app.rt.publish('slow', 'late')
  const result = await next
  seen.push((result.value as CategoryEvent<string>).data)
  t.same(seen, ['late'])
  t.match(urls[1], /since_time=\d{13}/, 'the second poll used the timeout timestamp')
  t.notMatch(urls[0], /since_time/, 'the first poll asks for new events only')
  const from = poll<string>({ url: s.events, category: 'slow', timeoutSeconds: 1, sinceTime: Date.now() })
  const fromNext = from.next()
  await until(() => urls.length >= 4)
  await until(() => broker.listeners === 1)
  await s.app.rt.publish('slow', 'later')
  t.equal((await fromNext).value?.data, 'later', 'a given sinceTime also advances on timeouts')
  await from.return(undefined)
  t.same(await iterator.return(undefined), { value: undefined, done: true }, 'breaking out between events ends the loop')
  t.equal(broker.listeners, 0)

  const controller = new AbortController()
  const inFlight = poll({ url: s.events, category: 'slow', timeoutSeconds: 100, signal: controller.signal })
  const pending = inFlight.next()
  await until(() => broker.listeners === 1)
  controller.abort()
  t.same(await pending, { value: undefined, done: true }, 'aborting the signal ends the loop without an error')
  await until(() => broker.listeners === 0)
  t.pass('the held request was cancelled')
})

t.test('poll(): retries transient failures with backoff, throws permanent ones, onError decides', async (t) => {
  let failures = 2
  const s = await start(t, {
    beforeSubscribe: (request) => {
      if ((request.query as { category: string }).category === 'flaky' && failures-- > 0) {
        throw Object.assign(new Error('try later'), { statusCode: 503 })
      }
      return true
    }
  })
  await s.app.rt.publish('flaky', 'finally')
  const errors: unknown[] = []
  for await (const event of poll({ url: s.events, category: 'flaky', sinceTime: 0, timeoutSeconds: 1, retryDelayMs: 1, onError: (e) => { errors.push(e) } })) {
    t.equal(event.data, 'finally')
    break
  }
  t.equal(errors.length, 2, 'two 503s, retried')

  await t.rejects((async () => {
    for await (const _ of poll({ url: s.events, category: '', timeoutSeconds: 1 })) t.fail('no events')
  })(), { name: 'CategoryPollError', status: 200 }, 'a bad request is not retried')

  let calls = 0
  await t.rejects((async () => {
    for await (const _ of poll({ url: s.events, category: '', timeoutSeconds: 1, retryDelayMs: 1, onError: () => ++calls < 3 })) t.fail('no events')
  })(), { name: 'CategoryPollError', status: 200 }, 'onError true retries, false stops')
  t.equal(calls, 3)

  const stop = new AbortController()
  const network = poll({ url: 'http://127.0.0.1:1/events', category: 'c', retryDelayMs: 1, maxRetryDelayMs: 2, signal: stop.signal, onError: () => { stop.abort() } })
  t.same(await network.next(), { value: undefined, done: true }, 'network errors are retried until the signal aborts')
  const preAborted = poll({ url: s.events, category: 'c', signal: AbortSignal.abort() })
  t.same(await preAborted.next(), { value: undefined, done: true })
})
