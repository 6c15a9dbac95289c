import { SignJWT, UnsecuredJWT } from 'jose'
import t from 'tap'
import { requestToken, verifyJwt } from '../src/hub/jwt.js'
import { RecordingSink, fakeRequest, makeHub } from './helpers.js'

const SECRET = 'jwt-secret'
const key = new TextEncoder().encode(SECRET)

/** A token made by jose, an independent implementation: AnyCable's format (identifiers JSON in `ext`). */
async function token(ext: unknown, options: { exp?: number; nbf?: number; secret?: Uint8Array; alg?: string } = {}): Promise<string> {
  const jwt = new SignJWT(ext === undefined ? {} : { ext: typeof ext === 'string' ? ext : JSON.stringify(ext) })
    .setProtectedHeader({ alg: options.alg ?? 'HS256' })
  if (options.exp !== undefined) jwt.setExpirationTime(options.exp)
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf)
  return jwt.sign(options.secret ?? key)
}

const head0 = (): string => Buffer.from('{"alg":"HS256"}').toString('base64url')
const now = (): number => Math.floor(Date.now() / 1000)


t.test('verifyJwt accepts AnyCable tokens made by jose and refuses the rest', async (t) => {
  t.same(verifyJwt(await token({ user_id: '42' }, { exp: now() + 60 }), SECRET), { ok: true, identity: { user_id: '42' } })
  t.same(verifyJwt(await token({ user_id: '42' }), SECRET), { ok: true, identity: { user_id: '42' } }, 'exp is optional')
  t.same(verifyJwt(await token({ user_id: '42' }, { exp: now() - 1 }), SECRET), { ok: false, failure: 'expired' })
  const invalid = { ok: false, failure: 'invalid' }
  t.same(verifyJwt(await token({ user_id: '42' }, { secret: new TextEncoder().encode('other') }), SECRET), invalid, 'another secret')
  t.same(verifyJwt(await token({ user_id: '42' }, { alg: 'HS512' }), SECRET), invalid, 'only HS256')
  t.same(verifyJwt(new UnsecuredJWT({ ext: '{"user_id":"42"}' }).encode(), SECRET), invalid, 'alg none')
  t.same(verifyJwt(await token(undefined), SECRET), invalid, 'no ext claim')
  t.same(verifyJwt(await token('not json'), SECRET), invalid, 'ext is not JSON')
  t.same(verifyJwt(await token('[1]'), SECRET), invalid, 'ext is not an object')
  t.same(verifyJwt(await token({ a: 1 }, { nbf: now() + 60 }), SECRET), invalid, 'not valid yet')
  t.same(verifyJwt(await token({ a: 1 }, { nbf: now() - 60 }), SECRET), { ok: true, identity: { a: 1 } })
  t.same(verifyJwt('a.b', SECRET), invalid)
  const arrayBody = `${head0()}.${Buffer.from('[]').toString('base64url')}`
  const { createHmac: hmac } = await import('node:crypto')
  t.same(verifyJwt(`${arrayBody}.${hmac('sha256', SECRET).update(arrayBody).digest('base64url')}`, SECRET), invalid, 'claims that are not an object')
  t.same(verifyJwt('!!.e30.sig', SECRET), invalid, 'not base64url')
  t.same(verifyJwt(`${Buffer.from('not json').toString('base64url')}.e30.sig`, SECRET), invalid, 'a header that is not JSON')
  const good = await token({ a: 1 })
  const [head, , signature] = good.split('.')
  const forged = `${head}.${Buffer.from(JSON.stringify({ ext: '{"a":2}' })).toString('base64url')}.${signature}`
  t.same(verifyJwt(forged, SECRET), invalid, 'a changed payload fails the signature')
  const stringExp = `${head}.${Buffer.from(JSON.stringify({ ext: '{}', exp: 'soon' })).toString('base64url')}`
  const { createHmac } = await import('node:crypto')
  t.same(verifyJwt(`${stringExp}.${createHmac('sha256', SECRET).update(stringExp).digest('base64url')}`, SECRET), invalid, 'a non-numeric exp')
})

t.test('requestToken reads X-<param> first, then ?<param>=', async (t) => {
  t.equal(requestToken(fakeRequest('/lp?jid=q', { 'x-jid': 'h' }), 'jid'), 'h')
  t.equal(requestToken(fakeRequest('/lp?a=1&jid=q'), 'jid'), 'q')
  t.equal(requestToken(fakeRequest('/lp?token=q'), 'token'), 'q')
  t.equal(requestToken(fakeRequest('/lp?jid='), 'jid'), undefined)
  t.equal(requestToken(fakeRequest('/lp'), 'jid'), undefined)
})

t.test('the hub identifies connections by JWT, with token_expired and jwtForce', async (t) => {
  const seen: unknown[] = []
  const { hub } = makeHub(t, {
    jwt: { secret: SECRET, param: 'jid', force: false },
    authenticate: (request) => { seen.push(request.url); return { user: 'from-hook' } },
    channels: { Me: { subscribed: (ctx) => ctx.transmit(ctx.identity) } }
  })
  const connected = await hub.connect(fakeRequest(`/lp?jid=${await token({ user_id: 7 })}`), new RecordingSink())
  if (!('session' in connected)) throw new Error('rejected')
  const sink = new RecordingSink()
  await connected.session.attach(sink, { catchUp: false })
  await connected.session.handle({ command: 'subscribe', identifier: '{"channel":"Me"}' })
  t.same(sink.messages.at(-1), { identifier: '{"channel":"Me"}', message: { user_id: 7 } }, 'ctx.identity is the token identifiers')
  t.same(seen, [], 'authenticate is not called for a token')
  t.same(await hub.connect(fakeRequest('/lp', { 'x-jid': await token({ a: 1 }, { exp: now() - 5 }) }), new RecordingSink()), { rejected: 'token_expired' })
  t.same(await hub.connect(fakeRequest('/lp?jid=garbage'), new RecordingSink()), { rejected: 'unauthorized' })
  t.equal(await hub.authenticate(fakeRequest('/lp?jid=garbage')), undefined)
  t.same(await hub.authenticate(fakeRequest('/lp')), { user: 'from-hook' }, 'no token: the hook decides')

  const forced = makeHub(t, { jwt: { secret: SECRET, param: 'jid', force: true } }).hub
  t.same(await forced.connect(fakeRequest('/lp'), new RecordingSink()), { rejected: 'unauthorized' }, 'jwtForce refuses a request without a token')
  t.ok('session' in (await forced.connect(fakeRequest(`/lp?jid=${await token({ a: 1 })}`), new RecordingSink())))
})
