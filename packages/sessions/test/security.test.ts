import t from 'tap'
import { EventStream, newId, poll, post, start } from './helpers.js'

const subscribe = [{ identifier: { channel: 'RoomChannel', room: 'sec' }, subscribe: true }]

t.test('session ids shorter than 22 characters (or with other characters) get 400', async (t) => {
  const { base } = await start(t)
  for (const id of ['short', 'a'.repeat(21), `${'a'.repeat(21)}!`, `${'a'.repeat(22)}.x`]) {
    const url = `${base}/${encodeURIComponent(id)}`
    const posted = await post(url, subscribe)
    t.equal(posted.status, 400, `POST ${id}`)
    t.match((posted.body as { message: string }).message, /22 to 100 characters/)
    t.equal((await poll(url)).status, 400, `poll ${id}`)
    const stream = await EventStream.open(url)
    t.equal(stream.status, 400, `event stream ${id}`)
    t.match(await stream.text(), /128 random bits/)
  }
  t.equal((await post(`${base}/${'a'.repeat(22)}`, subscribe)).status, 200, '22 characters are enough')
  t.equal((await post(`${base}/${'b'.repeat(100)}`, subscribe)).status, 200, 'up to 100 (Fastify default maxParamLength)')
  t.equal((await post(`${base}/${crypto.randomUUID()}`, subscribe)).status, 200, 'a UUID is accepted')
})

t.test('a session is bound to the identity that created it: another gets 403, a refused one 401', async (t) => {
  const { base, app } = await start(t)
  const id = newId()
  const url = `${base}/${id}`
  const alice = { cookie: 'user=alice' }
  const mallory = { cookie: 'user=mallory' }
  t.equal((await post(url, subscribe, alice)).status, 200)

  const posted = await post(url, [{ identifier: { channel: 'RoomChannel', room: 'sec' }, unsubscribe: true }], mallory)
  t.equal(posted.status, 403)
  t.match(posted.body, { statusCode: 403, error: 'Forbidden', message: 'this session belongs to another identity' })
  t.equal((await poll(url, mallory)).status, 403)
  const stream = await EventStream.open(url, mallory)
  t.equal(stream.status, 403)
  t.equal((await post(url, subscribe, {})).status, 403, 'no cookie is another identity (guest)')

  t.equal((await post(url, subscribe, { cookie: 'user=nobody' })).status, 401, 'authenticate refuses: 401 on an existing session')
  const fresh = `${base}/${newId()}`
  const refused = await post(fresh, subscribe, { cookie: 'user=nobody' })
  t.equal(refused.status, 401)
  t.match(refused.body, { message: 'unauthorized' })
  t.equal((await EventStream.open(fresh, { cookie: 'user=nobody' })).status, 401)
  t.equal(app.rtSessions.get(id.slice(0)) !== undefined && app.rtSessions.size, 1, 'no session was created for the refused requests')

  // Alice's session was untouched by the others.
  const mine = (await poll(`${url}?timeout=0`, alice)).body as { messages: Array<{ type: string }> }
  t.same(mine.messages.map((m) => m.type), ['connected', 'received'])
  t.equal(app.rtSessions.get(id)!.identityKey, '{"user":"alice"}')
})

t.test('identity comparison ignores key order', async (t) => {
  let flip = false
  const { base } = await start(t, {}, {
    authenticate: () => {
      flip = !flip
      return flip ? { a: 1, b: { c: 1, d: 2 } } : { b: { d: 2, c: 1 }, a: 1 }
    }
  })
  const url = `${base}/${newId()}`
  t.equal((await post(url, subscribe)).status, 200)
  t.equal((await post(url, subscribe)).status, 200)
})

t.test('bad POST bodies get 400 with a reason, and nothing runs', async (t) => {
  const { base, app } = await start(t)
  const id = newId()
  const url = `${base}/${id}`
  const ident = { channel: 'RoomChannel', room: 'b' }
  const cases: Array<[string, string, RegExp]> = [
    ['broken JSON', '[{"identifier":', /the body is not valid JSON/],
    ['empty body', '', /not valid JSON/],
    ['not an array', '{"identifier":{"channel":"RoomChannel"},"subscribe":true}', /must be a JSON array of requests/],
    ['empty array', '[]', /at least one request/],
    ['not an object', '[42]', /request 0: must be a JSON object/],
    ['no identifier', '[{"subscribe":true}]', /request 0: needs an "identifier" object/],
    ['identifier string', '[{"identifier":"{\\"channel\\":\\"RoomChannel\\"}","subscribe":true}]', /needs an "identifier" object/],
    ['no channel', '[{"identifier":{"room":"b"},"subscribe":true}]', /needs "identifier.channel"/],
    ['empty channel', '[{"identifier":{"channel":""},"subscribe":true}]', /needs "identifier.channel"/],
    ['unknown kind', JSON.stringify([{ identifier: ident, subscribe: true }, { identifier: ident, publish: true }]), /request 1: must have exactly one of/],
    ['two kinds', JSON.stringify([{ identifier: ident, subscribe: true, unsubscribe: true }]), /exactly one of/],
    ['subscribe false', JSON.stringify([{ identifier: ident, subscribe: false }]), /request 0: "subscribe" must be true/],
    ['unsubscribe string', JSON.stringify([{ identifier: ident, unsubscribe: 'yes' }]), /"unsubscribe" must be true/],
    ['send without action', JSON.stringify([{ identifier: ident, send: { text: 'x' } }]), /"send" must be an object with a non-empty string "action"/],
    ['send string', JSON.stringify([{ identifier: ident, send: 'say' }]), /"send" must be an object/]
  ]
  for (const [name, body, reason] of cases) {
    const res = await post(url, body, { 'content-type': 'application/json' })
    t.equal(res.status, 400, name)
    t.match((res.body as { message: string }).message, reason, name)
  }
  t.equal(app.rtSessions.get(id), undefined, 'no session was created by bad bodies')
  const plain = await post(url, JSON.stringify(subscribe), { 'content-type': 'text/plain' })
  t.equal(plain.status, 200, 'any content type is read as JSON text (browsers send text/plain without a preflight)')
  t.equal(app.rt.hub.listeners('room_sec'), 1)
  const tooBig = await post(url, JSON.stringify([{ identifier: ident, send: { action: 'say', text: 'x'.repeat(70 * 1024) } }]))
  t.equal(tooBig.status, 413, 'over bodyLimit')
})

t.test('a small bodyLimit is enforced with 413', async (t) => {
  const { base } = await start(t, { bodyLimit: 100 })
  const res = await post(`${base}/${newId()}`, JSON.stringify([{ identifier: { channel: 'RoomChannel', room: 'x'.repeat(100) }, subscribe: true }]))
  t.equal(res.status, 413)
})

t.test('CORS: any Origin is reflected by default, without credentials; cross-origin cookies refused; preflight answered', async (t) => {
  const { base } = await start(t)
  const url = `${base}/${newId()}`
  const res = await post(url, subscribe, { origin: 'https://app.example' })
  t.equal(res.status, 200)
  t.equal(res.headers.get('access-control-allow-origin'), 'https://app.example')
  t.equal(res.headers.get('access-control-allow-credentials'), null, 'no credentials without allowedOrigins')
  const withCookie = await post(url, subscribe, { origin: 'https://evil.example', cookie: 'session=victim' })
  t.equal(withCookie.status, 403)
  t.match(withCookie.body, { message: /allowedOrigins/ })
  const badOrigin = await post(url, subscribe, { origin: 'null', cookie: 'session=victim' })
  t.equal(badOrigin.status, 403, 'an opaque origin with cookies is refused too')
  const sameSite = await post(url, subscribe, { origin: base, cookie: 'session=mine' })
  t.equal(sameSite.status, 200, 'same-origin pages use cookies freely')
  const preflight = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
  t.equal(preflight.status, 204)
  t.match(preflight.headers.get('access-control-allow-methods'), /POST/)
  t.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example')
  const stream = await EventStream.open(url, { origin: 'https://app.example' })
  t.equal(stream.headers['access-control-allow-origin'], 'https://app.example', 'event streams carry the CORS headers too')
  stream.close()
})

t.test('CORS: allowedOrigins restricts browsers, and refuses other origins outright', async (t) => {
  const { base } = await start(t, { allowedOrigins: ['app.example', '*.trusted.example'] })
  const url = `${base}/${newId()}`
  const ok = await post(url, subscribe, { origin: 'https://app.example' })
  t.equal(ok.status, 200)
  t.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example')
  t.equal(ok.headers.get('access-control-allow-credentials'), 'true')
  t.equal((await post(url, subscribe, { origin: 'https://a.trusted.example' })).headers.get('access-control-allow-origin'), 'https://a.trusted.example')
  const evil = await post(url, subscribe, { origin: 'https://evil.example' })
  t.equal(evil.status, 403)
  t.equal(evil.headers.get('access-control-allow-origin'), null)
  t.match(evil.body, { message: 'origin not allowed' })
  const evilStream = await EventStream.open(url, { origin: 'https://evil.example' })
  t.equal(evilStream.status, 403)
  t.equal((await post(url, [{ identifier: { channel: 'RoomChannel', room: 'sec' }, unsubscribe: true }])).status, 200, 'no Origin (not a browser): allowed')
})

t.test('maxSessions: a new id beyond the limit gets 503; known ids still work', async (t) => {
  const { base } = await start(t, { maxSessions: 1 })
  const first = `${base}/${newId()}`
  t.equal((await post(first, subscribe)).status, 200)
  const refused = await post(`${base}/${newId()}`, subscribe)
  t.equal(refused.status, 503)
  t.match(refused.body, { message: 'too many sessions' })
  t.equal((await poll(`${first}?timeout=0`)).status, 200)
})
