import t from 'tap'
import { eventsOf, start } from './helpers.js'
import { parseSubscribeQuery } from '../src/handler/query.js'

const TIMEOUT_ERROR = "Invalid or missing 'timeout' arg.  Must be 1-110."
const CATEGORY_ERROR = 'Invalid subscription category, must be 1-1024 characters long.'
const GOLONGPOLL_HEADERS = {
  'content-type': 'application/json',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache, no-store, must-revalidate',
  pragma: 'no-cache',
  expires: '0'
}

t.test('subscribe errors: golongpoll messages in its validation order, 200 as golongpoll answers them, golongpoll headers (cases 1-9, 11; issue 21 case 5)', async (t) => {
  const s = await start(t)
  const uuid = '7fa9e38c-e43b-49d7-9ae1-cc3c8d99d714'
  const cases: Array<[string, string]> = [
    ['category=c', TIMEOUT_ERROR],
    ['category=c&timeout=', TIMEOUT_ERROR],
    ['category=c&timeout=0', TIMEOUT_ERROR],
    ['category=c&timeout=-1', TIMEOUT_ERROR],
    ['category=c&timeout=1.5', TIMEOUT_ERROR],
    ['category=c&timeout=abc', TIMEOUT_ERROR],
    ['category=c&timeout=111', TIMEOUT_ERROR],
    ['category=c&timeout=99999999999999999999999', TIMEOUT_ERROR],
    ['timeout=5', CATEGORY_ERROR],
    ['timeout=5&category=', CATEGORY_ERROR],
    [`timeout=5&category=${'a'.repeat(1025)}`, CATEGORY_ERROR],
    [`timeout=5&category=${encodeURIComponent('€'.repeat(342))}`, CATEGORY_ERROR],
    ['timeout=0&category=', TIMEOUT_ERROR],
    ['timeout=5&category=c&since_time=abc', "Invalid 'since_time' arg."],
    ['timeout=5&category=c&since_time=1.5', "Invalid 'since_time' arg."],
    ['timeout=5&category=c&since_time=99999999999999999999', "Invalid 'since_time' arg."],
    [`timeout=5&category=c&last_id=${uuid}`, "Must provide 'since_time' arg when providing 'last_id'."],
    [`timeout=5&category=c&since_time=&last_id=${uuid}`, "Must provide 'since_time' arg when providing 'last_id'."],
    ['timeout=5&category=c&since_time=1&last_id=abc', "Param 'last_id' was not a valid event id."],
    ['timeout=5&category=c&since_time=1&last_id=1/x', "Param 'last_id' was not a valid event id."],
    ['timeout=abc&category=c&since_time=abc&last_id=abc', TIMEOUT_ERROR]
  ]
  for (const [query, error] of cases) {
    const res = await s.get(query)
    t.equal(res.status, 200, query.slice(0, 60))
    for (const [name, value] of Object.entries(GOLONGPOLL_HEADERS)) t.equal(res.headers.get(name), value, `${name} on errors too`)
    t.equal(await res.text(), `{"error": ${JSON.stringify(error)}}`, query.slice(0, 60))
  }
})

t.test('accepted forms: timeout 007, %2B1 and max; 1024-byte category; empty last_id; UUID and rt ids (cases 3, 5, 10)', async (t) => {
  const s = await start(t)
  const category = 'b'.repeat(1024)
  await s.publish(category, 'x')
  const ok = [
    `timeout=007&category=${category}&since_time=0`,
    `timeout=%2B1&category=${category}&since_time=0`,
    `timeout=110&category=${category}&since_time=-5`,
    `timeout=1&category=${category}&since_time=0&last_id=`,
    `timeout=1&category=${category}&since_time=0&last_id=%7B7FA9E38C-E43B-49D7-9AE1-CC3C8D99D714%7D`,
    `timeout=1&category=${category}&since_time=0&last_id=urn:uuid:7fa9e38ce43b49d79ae1cc3c8d99d714`,
    `timeout=1&category=${category}&since_time=0&last_id=9/other-epoch/${category}`
  ]
  for (const query of ok) {
    const body = await s.json(query)
    t.same(eventsOf(body).map((e) => e.data), ['x'], query.slice(0, 40))
  }
  const timedOut = await s.json('timeout=1&category=c&last_id=')
  t.equal(timedOut.timeout, 'no events before timeout', 'an empty last_id without since_time is not an error')
})

t.test('errorStatus 400: the same bodies with a 4xx status, for clients that read the status only', async (t) => {
  const s = await start(t, { errorStatus: 400, maxLongpollTimeoutSeconds: 30 })
  const res = await s.get('category=c')
  t.equal(res.status, 400)
  t.same(await res.json(), { error: "Invalid or missing 'timeout' arg.  Must be 1-30." })
})

t.test('repeated parameters: the first one counts; POST works like GET (cases 26, 27)', async (t) => {
  const s = await start(t)
  await s.publish('first', 1)
  await s.publish('second', 2)
  const body = await s.json('category=first&category=second&timeout=1&since_time=0&since_time=abc')
  t.same(eventsOf(body).map((e) => e.category), ['first'])
  const posted = await s.json('category=second&timeout=1&since_time=0', { method: 'POST', body: 'ignored', headers: { 'content-type': 'text/plain' } })
  t.same(eventsOf(posted).map((e) => e.data), [2])
  const put = await s.get('category=second&timeout=1', { method: 'PUT' })
  t.equal(put.status, 404, 'other methods are not routed')
})

t.test('since_time reads as an int64 whatever its length: short ones without BigInt, long ones with it, the same numbers', async (t) => {
  const since = (text: string): number | string | undefined => {
    const query = parseSubscribeQuery({ timeout: '1', category: 'c', since_time: text }, 110)
    return 'error' in query ? query.error : query.sinceTime
  }
  t.ok(Object.is(since('-0'), 0), '-0 is 0, as BigInt reads it')
  t.equal(since('+00000000000007'), 7, '15 characters')
  t.equal(since('0000000000000000007'), 7, 'leading zeros past 15 characters')
  t.equal(since('1796191013506'), 1796191013506, 'a millisecond timestamp')
  t.equal(since('9223372036854775807'), 2 ** 63, 'int64 max (as the nearest double)')
  t.equal(since('-9223372036854775808'), -(2 ** 63), 'int64 min')
  t.equal(since('9223372036854775808'), "Invalid 'since_time' arg.", 'past int64')
  t.equal(since('-9223372036854775809'), "Invalid 'since_time' arg.", 'below int64')
})
