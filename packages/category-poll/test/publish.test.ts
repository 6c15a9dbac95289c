import t from 'tap'
import { eventsOf, start } from './helpers.js'

const JSON_ERROR = 'Invalid POST body json.'
const CATEGORY_ERROR = "Invalid or missing 'category' arg, must be 1-1024 characters long."
const DATA_ERROR = "Invalid or missing 'data' arg, must be non-nil."
const auth = { authorization: 'Bearer secret' }

t.test('the publish endpoint is closed unless enabled', async (t) => {
  const s = await start(t)
  const res = await fetch(s.publishUrl, { method: 'POST', body: '{"category":"c","data":1}' })
  t.equal(res.status, 404)
})

t.test('enabled with a key: success body and headers, events reach subscribers (cases 28, 32, 33)', async (t) => {
  const s = await start(t, { enablePublish: true, publishKey: 'secret', prefix: '/category' })
  const values: unknown[] = ['x', '', 0, false, [], {}, { nested: [1, 'two'] }]
  for (const data of values) {
    const res = await fetch(s.publishUrl, { method: 'POST', headers: auth, body: JSON.stringify({ category: 'farm', data }) })
    t.equal(res.status, 200)
    t.equal(await res.text(), '{"success": true}')
    t.equal(res.headers.get('content-type'), 'application/json')
    t.equal(res.headers.get('x-content-type-options'), 'nosniff')
    t.equal(res.headers.get('cache-control'), null, 'no cache headers on publish, as golongpoll')
  }
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/json']) {
    const res = await fetch(s.publishUrl, { method: 'POST', headers: { ...auth, 'content-type': type }, body: '{"category":"farm","data":"typed"}' })
    t.equal(res.status, 200, type)
  }
  const body = await s.json('category=farm&timeout=1&since_time=0')
  t.same(eventsOf(body).map((e) => e.data), [...values, 'typed', 'typed', 'typed'], 'subscribers see exactly the published values')
})

t.test('bad publishes: golongpoll 400/405 bodies; case-insensitive keys; trailing bytes refused (cases 29-31, 34)', async (t) => {
  const s = await start(t, { enablePublish: true, publishKey: 'secret' })
  const cases: Array<[string, string | undefined, string]> = [
    ['empty body', undefined, JSON_ERROR],
    ['empty string', '', JSON_ERROR],
    ['invalid JSON', '{"category":', JSON_ERROR],
    ['trailing garbage', '{"category":"c","data":1} garbage', JSON_ERROR],
    ['array', '[1]', JSON_ERROR],
    ['number', '5', JSON_ERROR],
    ['null', 'null', JSON_ERROR],
    ['category not a string', '{"category":5,"data":1}', JSON_ERROR],
    ['missing category', '{"data":1}', CATEGORY_ERROR],
    ['null category', '{"category":null,"data":1}', CATEGORY_ERROR],
    ['empty category', '{"category":"","data":1}', CATEGORY_ERROR],
    ['1025-byte category', JSON.stringify({ category: 'a'.repeat(1025), data: 1 }), CATEGORY_ERROR],
    ['342 euro signs', JSON.stringify({ category: '€'.repeat(342), data: 1 }), CATEGORY_ERROR],
    ['category checked before data', '{"category":""}', CATEGORY_ERROR],
    ['missing data', '{"category":"c"}', DATA_ERROR],
    ['null data', '{"category":"c","data":null}', DATA_ERROR]
  ]
  for (const [name, body, error] of cases) {
    const res = await fetch(s.publishUrl, { method: 'POST', headers: auth, ...(body === undefined ? {} : { body }) })
    t.equal(res.status, 400, name)
    t.equal(await res.text(), `{"error": ${JSON.stringify(error)}}`, name)
  }
  for (const method of ['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    const res = await fetch(s.publishUrl, { method, headers: auth })
    t.equal(res.status, 405, method)
    t.equal(res.headers.get('allow'), 'POST')
    t.same(await res.json(), { error: 'Invalid HTTP Method. Only POST allowed.' }, method)
  }
  const head = await fetch(s.publishUrl, { method: 'HEAD' })
  t.equal(head.status, 405)
  const mixedCase = await fetch(s.publishUrl, { method: 'POST', headers: auth, body: '{"CATEGORY":"c","Data":"go style","extra":1}' })
  t.equal(mixedCase.status, 200, 'keys match case-insensitively, unknown keys are ignored')
  const exact = await fetch(s.publishUrl, { method: 'POST', headers: auth, body: JSON.stringify({ category: 'c', data: 'x'.repeat(1024 * 1024) }) })
  t.equal(exact.status, 413)
  t.match(await exact.json(), { error: /too large/i }, 'even Fastify errors are golongpoll JSON')
  t.same(eventsOf(await s.json('category=c&timeout=1&since_time=0')).map((e) => e.data), ['go style'], 'nothing else was published')
})

t.test('guards: key, beforePublish hook (async, own reply), 401/403', async (t) => {
  const s = await start(t, {
    enablePublish: true,
    publishKey: 'secret',
    beforePublish: async (request, reply) => {
      if (request.headers['x-user'] === 'admin') return true
      if (request.headers['x-user'] === 'teapot') {
        await reply.code(418).send({ error: 'I am a teapot' })
        return false
      }
      return request.headers['x-user'] === 'anyone' ? undefined : false
    }
  })
  const post = (headers: Record<string, string>): Promise<Response> =>
    fetch(s.publishUrl, { method: 'POST', headers, body: '{"category":"g","data":1}' })
  t.equal((await post(auth)).status, 200, 'the key')
  t.equal((await post({ 'x-user': 'admin' })).status, 200, 'the hook allows')
  t.equal((await post({ 'x-user': 'anyone' })).status, 200, 'undefined lets the request through')
  const refused = await post({ 'x-user': 'mallory' })
  t.equal(refused.status, 403)
  t.same(await refused.json(), { error: 'Forbidden.' })
  const wrongKey = await post({ authorization: 'Bearer nope', 'x-user': 'mallory' })
  t.equal(wrongKey.status, 403, 'a wrong key falls back to the hook')
  const teapot = await post({ 'x-user': 'teapot' })
  t.equal(teapot.status, 418, 'a hook that replied keeps its answer')

  const keyOnly = await start(t, { enablePublish: true, publishKey: 'secret' })
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'Basic secret' }] as Array<Record<string, string>>) {
    const res = await fetch(keyOnly.publishUrl, { method: 'POST', headers, body: '{"category":"g","data":1}' })
    t.equal(res.status, 401)
    t.equal(res.headers.get('www-authenticate'), 'Bearer')
    t.match(await res.json(), { error: /Bearer <key>/ })
  }
})
