import t from 'tap'
import { signStream } from '@rt/core'
import { answer, http2, json, open, startApp, subscribed } from './helpers.js'

const SECRET = 'streams-secret'

t.test('every query form subscribes the identifier AnyCable builds for it', async (t) => {
  const { base } = await startApp(t, {
    streamsSecret: SECRET,
    channels: { ChatChannel: { subscribed: (ctx) => ctx.streamFrom(`chat_${String(ctx.params.room ?? 'lobby')}`) } }
  })
  const cases: Array<[string, string]> = [
    [`identifier=${encodeURIComponent('{"room":7,"channel":"ChatChannel"}')}`, '{"room":7,"channel":"ChatChannel"}'],
    ['channel=ChatChannel', '{"channel":"ChatChannel"}'],
    ['stream=chat%2F1', '{"channel":"$pubsub","stream_name":"chat/1"}'],
    [`signed_stream=${encodeURIComponent(signStream('secret_1', SECRET))}`, JSON.stringify({ channel: '$pubsub', signed_stream_name: signStream('secret_1', SECRET) })],
    [`turbo_signed_stream_name=${encodeURIComponent(signStream('turbo_1', SECRET))}`, JSON.stringify({ channel: 'Turbo::StreamsChannel', signed_stream_name: signStream('turbo_1', SECRET) })],
    // Priority order: identifier, channel, stream, signed_stream, turbo_signed_stream_name.
    ['stream=a&channel=ChatChannel', '{"channel":"ChatChannel"}'],
    ['signed_stream=x&stream=b', '{"channel":"$pubsub","stream_name":"b"}'],
    // Empty values count as absent, as in AnyCable (Go's Query().Get).
    ['identifier=&stream=c', '{"channel":"$pubsub","stream_name":"c"}']
  ]
  for (const [query, identifier] of cases) {
    const stream = await open(`${base}/events?${query}`)
    t.equal(stream.status, 200, query)
    const [welcome, confirm] = await stream.take(2)
    t.equal(welcome!.event, 'welcome', query)
    t.match(json(welcome!), { type: 'welcome', sid: String })
    t.equal(confirm!.event, 'confirm_subscription')
    t.same(json(confirm!), { type: 'confirm_subscription', identifier }, query)
    stream.close()
  }
})

t.test('the done-check: welcome, confirmation, pings, and a broadcast with its id', async (t) => {
  const { app, base } = await startApp(t, { broadcastKey: 'key' }, { pingInterval: 20 })
  const stream = await open(`${base}/events?stream=chat_1`)
  const [welcome, confirm] = await stream.take(2)
  t.equal(welcome!.event, 'welcome')
  t.equal(confirm!.event, 'confirm_subscription')
  const ping = await stream.next()
  t.equal(ping.event, 'ping')
  t.match(json(ping), { type: 'ping', message: Number })
  t.ok(Math.abs((json(ping) as { message: number }).message - Date.now() / 1000) < 60, 'Unix seconds')
  const res = await fetch(`${base}/_broadcast`, {
    method: 'POST',
    headers: { authorization: 'Bearer key' },
    body: JSON.stringify({ stream: 'chat_1', data: JSON.stringify({ text: 'hi' }) })
  })
  t.equal(res.status, 201)
  const message = await stream.nextMatching((event) => event.event === 'message')
  t.equal(message.data, '{"text":"hi"}', 'GET carries only the message part')
  const { epoch } = await app.rt.broker.position('chat_1')
  t.equal(message.id, `1/${epoch}/chat_1`, 'AnyCable id: offset/epoch/stream')
  t.match(stream.text, `data: {"text":"hi"}\nid: 1/${epoch}/chat_1\n\n`)
  stream.close()
})

t.test('headers as AnyCable sends them; no CORS unless allowedOrigins is set', async (t) => {
  const { base } = await startApp(t)
  const foreign = await open(`${base}/events?stream=s`, { headers: { origin: 'https://app.example.com' } })
  t.equal(foreign.status, 403, 'another site gets 403 without allowedOrigins')
  foreign.close()
  const stream = await open(`${base}/events?stream=s`, { headers: { origin: base } })
  t.equal(stream.status, 200, 'a same-origin page')
  t.match(stream.headers, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'private, no-cache, no-store, must-revalidate, max-age=0, no-transform',
    pragma: 'no-cache',
    expires: '0',
    'x-content-type-options': 'nosniff',
    'x-accel-buffering': 'no',
    // HTTP/2 forbids connection-specific headers.
    ...(http2 ? {} : { connection: 'keep-alive' })
  })
  if (http2) t.notOk('connection' in stream.headers, 'no Connection header over HTTP/2')
  t.notOk('access-control-allow-origin' in stream.headers, 'CORS is off by default')
  t.notOk('content-length' in stream.headers)
  stream.close()
})

t.test('string messages go out raw; multi-line payloads are split into data lines', async (t) => {
  const { app, base } = await startApp(t)
  const stream = await subscribed(`${base}/events?stream=turbo`)
  await app.rt.publish('turbo', '<turbo-stream action="append">\n<template>hi</template>\n</turbo-stream>')
  await app.rt.publish('turbo', { text: 'line\nbreak' })
  await app.rt.publish('turbo', null)
  const [html, object, nothing] = await stream.take(3)
  t.equal(html!.data, '<turbo-stream action="append">\n<template>hi</template>\n</turbo-stream>')
  t.match(stream.text, 'data: <turbo-stream action="append">\ndata: <template>hi</template>\ndata: </turbo-stream>\nid: 1/')
  t.same(json(object!), { text: 'line\nbreak' }, 'JSON escapes its own newlines')
  t.equal(nothing!.data, 'null')
  stream.close()
})

t.test('typed broadcasts and transmissions', async (t) => {
  const { app, base } = await startApp(t, {
    channels: {
      Greeter: {
        subscribed(ctx) {
          ctx.transmit({ hello: 'you' })
          ctx.streamFrom('greetings')
        }
      }
    }
  })
  const stream = await subscribed(`${base}/events?channel=Greeter`)
  const transmission = await stream.next()
  t.equal(transmission.event, 'message')
  t.same(json(transmission), { hello: 'you' })
  t.equal(transmission.id, undefined, 'a transmission has no stream position')
  await app.rt.publish('greetings', { who: 'ann' }, { meta: { broadcast_type: 'presence' } })
  const typed = await stream.next()
  t.equal(typed.event, 'presence')
  t.match(json(typed), { type: 'presence', identifier: '{"channel":"Greeter"}', message: { who: 'ann' }, stream_id: 'greetings', offset: 1 })
  t.match(typed.id, /^1\/[^/]+\/greetings$/)
  await app.rt.publish('greetings', 'transient', { transient: true })
  const transient = await stream.next()
  t.equal(transient.data, 'transient')
  t.equal(transient.id, undefined, 'transient messages carry no id')
  stream.close()
})

t.test('raw mode: data messages only, comment keep-alives', async (t) => {
  const { app, base } = await startApp(t, {}, { pingInterval: 10 })
  for (const flag of ['1', 'TRUE', 't', 'Y']) {
    const stream = await open(`${base}/events?stream=raw_${flag}&raw=${flag}`)
    t.equal(stream.status, 200)
    await stream.until(() => stream.comments >= 2)
    await app.rt.publish(`raw_${flag}`, { n: 1 })
    const event = await stream.next()
    t.same(json(event), { n: 1 }, flag)
    t.match(event.id, /^1\//)
    t.equal(stream.events.length, 1, 'no welcome, confirmation or ping events')
    t.notMatch(stream.text, /event:/)
    stream.close()
  }
  const notRaw = await open(`${base}/events?stream=x&raw=0`)
  t.equal((await notRaw.next()).event, 'welcome', 'raw=0 is not raw')
  notRaw.close()
})

t.test('history_since sends the retained history first', async (t) => {
  const { app, base } = await startApp(t)
  const before = Math.floor(Date.now() / 1000)
  await app.rt.publish('hist', 'one')
  await app.rt.publish('hist', 'two')
  const stream = await subscribed(`${base}/events?stream=hist&history_since=${before - 1}`)
  const [one, two, confirmed] = await stream.take(3)
  t.same([one!.data, two!.data, confirmed!.event], ['one', 'two', 'confirm_history'])
  await app.rt.publish('hist', 'three')
  t.equal((await stream.next()).data, 'three')
  stream.close()
  const far = await subscribed(`${base}/events?stream=hist&history_since=${before + 3600}`)
  t.equal((await far.next()).event, 'confirm_history', 'nothing that recent')
  far.close()
  const zero = await subscribed(`${base}/events?stream=hist&history_since=0`)
  await app.rt.publish('hist', 'four')
  t.equal((await zero.next()).data, 'four', 'history_since=0 asks for nothing')
  zero.close()
})

t.test('400 with a reason, 401, 405', async (t) => {
  const { base } = await startApp(t, {
    streamsSecret: SECRET,
    authenticate: (request) => (request.query as { jid?: string }).jid === 'good' ? { user: 'u' } : false,
    channels: { Closed: { subscribed: (ctx) => ctx.reject() } }
  })
  const none = await answer(`${base}/events?jid=good`)
  t.equal(none.status, 400)
  t.match(none.body, /no channel provided/)
  const badSince = await answer(`${base}/events?jid=good&stream=s&history_since=yesterday`)
  t.equal(badSince.status, 400)
  t.match(badSince.body, /history_since/)
  const twoSince = await answer(`${base}/events?jid=good&stream=s&history_since=1&history_since=2`)
  t.equal(twoSince.status, 400)
  const unauthorized = await answer(`${base}/events?stream=s`)
  t.equal(unauthorized.status, 401)
  t.equal(unauthorized.body, '', 'empty body, as AnyCable')
  const rejected = await answer(`${base}/events?jid=good&channel=Closed`)
  t.equal(rejected.status, 400, 'a rejected subscription is 400, as AnyCable code (not 200 then silence)')
  t.match(rejected.body, /subscription rejected/)
  const unknown = await answer(`${base}/events?jid=good&channel=Nope`)
  t.equal(unknown.status, 400)
  t.match(unknown.body, /unknown channel/)
  const badIdentifier = await answer(`${base}/events?jid=good&identifier=notjson`)
  t.equal(badIdentifier.status, 400)
  const forged = signStream('secret_room', 'another-secret')
  const forgedAnswer = await answer(`${base}/events?jid=good&signed_stream=${encodeURIComponent(forged)}`)
  t.equal(forgedAnswer.status, 400, 'a forged signed stream is rejected')
  const tampered = signStream('secret_room', SECRET).replace(/^[A-Za-z0-9]/, (c) => (c === 'A' ? 'B' : 'A'))
  t.equal((await answer(`${base}/events?jid=good&signed_stream=${encodeURIComponent(tampered)}`)).status, 400)
  t.equal((await answer(`${base}/events?jid=good&turbo_signed_stream_name=${encodeURIComponent(forged)}`)).status, 400)
  for (const method of ['PUT', 'PATCH', 'DELETE', 'HEAD']) {
    const res = await answer(`${base}/events?stream=s`, { method })
    t.equal(res.status, 405, method)
    t.equal(res.headers.allow, 'GET, POST, OPTIONS')
  }
  const good = await subscribed(`${base}/events?jid=good&signed_stream=${encodeURIComponent(signStream('secret_room', SECRET))}`)
  good.close()
})

t.test('CORS: allowedOrigins with AnyCable matching, preflight allows Last-Event-ID', async (t) => {
  const { base } = await startApp(t, {}, { allowedOrigins: ['example.com', '*.rt.test', 'localhost:3000'] })
  const preflight = await answer(`${base}/events`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.rt.test', 'access-control-request-method': 'GET', 'access-control-request-headers': 'last-event-id' }
  })
  t.equal(preflight.status, 200)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.rt.test')
  t.match(preflight.headers['access-control-allow-headers'], /Last-Event-ID/)
  t.match(preflight.headers['access-control-allow-methods'], /GET/)
  const plainOptions = await answer(`${base}/events`, { method: 'OPTIONS' })
  t.equal(plainOptions.status, 200, 'OPTIONS without a preflight is 200, as AnyCable')
  const denied = await answer(`${base}/events`, { method: 'OPTIONS', headers: { origin: 'https://evil.test', 'access-control-request-method': 'GET' } })
  t.equal(denied.status, 200)
  t.notOk('access-control-allow-origin' in denied.headers)
  for (const [origin, allowed] of [['http://example.com', true], ['http://localhost:3000', true], ['http://localhost:4000', false], ['https://rt.test.evil.com', false]] as const) {
    const stream = await open(`${base}/events?stream=s`, { headers: { origin } })
    t.equal(stream.status, allowed ? 200 : 403, `${origin}: other sites may not open streams with the visitor's cookies`)
    t.equal(stream.headers['access-control-allow-origin'], allowed ? origin : undefined, origin)
    stream.close()
  }
})

t.test('any origin with ["*"]: the origin is echoed', async (t) => {
  const { base } = await startApp(t, {}, { allowedOrigins: ['*'] })
  const stream = await open(`${base}/events?stream=s`, { headers: { origin: 'https://anything.test' } })
  t.equal(stream.headers['access-control-allow-origin'], '*', "['*'] answers * (never with cookies)")
  stream.close()
})
