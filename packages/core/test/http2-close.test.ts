import { connect, type ClientHttp2Session } from 'node:http2'
import Fastify from 'fastify'
import t from 'tap'
import { rtCore } from '../src/index.js'

/** Fastify's own http2SessionTimeout (72 s) is what a slow close would wait for; the guard fails the test long before. */
const GUARD_MS = 20_000

/** Resolves with what finished first: the app's close, or the guard. */
async function closeWithinGuard(close: Promise<unknown>): Promise<'closed' | 'guard'> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<'guard'>((resolve) => { timer = setTimeout(() => resolve('guard'), GUARD_MS) })
  try {
    return await Promise.race([close.then(() => 'closed' as const), guard])
  } finally {
    clearTimeout(timer)
  }
}

function status(session: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path })
    stream.on('response', (headers) => resolve(Number(headers[':status'])))
    stream.on('error', reject)
    stream.resume()
  })
}

t.test('HTTP/2: close does not wait for an idle client session; the client is told GOAWAY', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(rtCore)
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const session = connect(base)
  t.teardown(() => session.destroy())
  let goaway = false
  session.on('goaway', () => { goaway = true })
  session.on('error', () => {})
  t.equal(await status(session, '/nowhere'), 404, 'the session carried a request and is now idle')
  t.notOk(session.closed || session.destroyed, 'the idle session is open when close starts')
  t.equal(await closeWithinGuard(app.close()), 'closed', 'app.close() completes while a client holds an idle session')
  t.ok(goaway, 'the client got GOAWAY')
})

t.test('HTTP/2: a stream in flight when close starts still gets its answer', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(rtCore)
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  let started!: () => void
  const inHandler = new Promise<void>((resolve) => { started = resolve })
  app.get('/slow', async () => {
    started()
    await released
    return 'done'
  })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const session = connect(base)
  t.teardown(() => session.destroy())
  session.on('error', () => {})
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const stream = session.request({ ':path': '/slow' })
    let status = 0
    let body = ''
    stream.on('response', (headers) => { status = Number(headers[':status']) })
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('end', () => resolve({ status, body }))
    stream.on('error', reject)
  })
  await inHandler
  const closing = app.close()
  // Let close reach the session before the answer is released.
  await new Promise((resolve) => setImmediate(resolve))
  release()
  t.same(await answer, { status: 200, body: 'done' }, 'the in-flight stream ends normally')
  t.equal(await closeWithinGuard(closing), 'closed')
})
