import t from 'tap'
import { checkAllowedOrigins, originMatcher } from '../src/origins.js'

t.test('AnyCable allowed_origins matching', async (t) => {
  const allowed = originMatcher(['example.com', '*.corp.test', 'localhost:3000'])
  t.equal(allowed('https://example.com'), true)
  t.equal(allowed('https://EXAMPLE.com'), true)
  t.equal(allowed('https://a.corp.test'), true)
  t.equal(allowed('https://a.b.corp.test'), true)
  t.equal(allowed('http://localhost:3000'), true)
  t.equal(allowed('http://localhost:3001'), false, 'the port is part of the host')
  t.equal(allowed('https://corp.test'), false, '*.corp.test is for subdomains')
  t.equal(allowed('https://evilexample.com'), false)
  t.equal(allowed('https://example.com.evil.test'), false)
  t.equal(allowed(undefined), false)
  t.equal(allowed('not a url'), false)
  t.equal(allowed('null'), false)
  t.equal(originMatcher(['*'])('https://anything.test'), true)
})

t.test('allowedOrigins option validation', async (t) => {
  t.equal(checkAllowedOrigins(undefined, 'p'), undefined)
  t.same(checkAllowedOrigins(['a.com'], 'p'), ['a.com'])
  t.throws(() => checkAllowedOrigins('a.com', '@rt/x'), /@rt\/x: allowedOrigins/)
  t.throws(() => checkAllowedOrigins([''], '@rt/x'), /allowedOrigins/)
})

t.test('origins without a host are refused', async (t) => {
  t.equal(originMatcher(['example.com'])('file:///etc/passwd'), false)
})

t.test('corsOrigin: * literally, or a matcher', async (t) => {
  const { corsOrigin } = await import('../src/origins.js')
  t.equal(corsOrigin(['*']), '*')
  const origin = corsOrigin(['a.test'])
  t.type(origin, 'function')
  if (typeof origin !== 'function') return
  const answers: boolean[] = []
  origin('https://a.test', (_error, allow) => answers.push(allow))
  origin('https://b.test', (_error, allow) => answers.push(allow))
  t.same(answers, [true, false])
})

t.test('originGuard: same origin, allowed origins and non-browsers pass; other sites get 403', async (t) => {
  const Fastify = (await import('fastify')).default
  const { originGuard } = await import('../src/origins.js')
  const make = async (allowed: string[] | undefined) => {
    const app = Fastify()
    app.addHook('onRequest', originGuard(allowed))
    app.all('/x', async () => 'ok')
    t.teardown(() => app.close())
    return app
  }
  const closed = await make(undefined)
  const status = async (app: Awaited<ReturnType<typeof make>>, headers: Record<string, string>, method: 'POST' | 'OPTIONS' = 'POST') =>
    (await app.inject({ method, url: '/x', headers: { host: 'rt.test', ...headers } })).statusCode
  t.equal(await status(closed, {}), 200, 'no Origin')
  t.equal(await status(closed, { origin: 'https://rt.test' }), 200, 'same origin')
  t.equal(await status(closed, { origin: 'https://evil.test' }), 403)
  t.equal(await status(closed, { origin: 'null' }), 403)
  t.equal(await status(closed, { origin: 'https://evil.test' }, 'OPTIONS'), 200, 'preflights are CORS\'s business')
  const open = await make(['app.test'])
  t.equal(await status(open, { origin: 'https://app.test' }), 200)
  t.equal(await status(open, { origin: 'https://evil.test' }), 403)
  const { isSameOrigin } = await import('../src/origins.js')
  t.equal(isSameOrigin('https://a.test', undefined), false)
})
