import t from 'tap'
import { formatMessageId, parseMessageId } from '../src/broker.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { deriveBroadcastKey, hmacHex, safeEqual, signStream, verifySignedStream } from '../src/signing.js'
import { advance, catchUp } from '../src/stream-reader.js'
import { Metrics } from '../src/metrics.js'

t.test('message ids are offset/epoch/stream and streams may contain slashes', async (t) => {
  const id = formatMessageId({ offset: 321, epoch: 'bc320', stream: 'chat/42/x' })
  t.equal(id, '321/bc320/chat/42/x')
  t.same(parseMessageId(id), { offset: 321, epoch: 'bc320', stream: 'chat/42/x' })
  for (const bad of ['', '1', '1/e', 'x/e/s', '/e/s', '1//s', '1/e/', '12345678901234567/e/s']) {
    t.equal(parseMessageId(bad), undefined, `rejects ${JSON.stringify(bad)}`)
  }
})

t.test('signed streams in AnyCable / MessageVerifier format', async (t) => {
  const signed = signStream('chat/42', 'secret')
  const [encoded, digest] = signed.split('--')
  t.equal(Buffer.from(encoded!, 'base64').toString(), '"chat/42"')
  t.equal(digest, hmacHex('secret', encoded!))
  t.equal(verifySignedStream(signed, 'secret'), 'chat/42')
  t.equal(verifySignedStream(signed, 'other'), undefined, 'wrong secret')
  t.equal(verifySignedStream(`${encoded}--${'0'.repeat(64)}`, 'secret'), undefined, 'forged digest')
  t.equal(verifySignedStream(`${signed}--x`, 'secret'), undefined, 'three parts')
  t.equal(verifySignedStream('nodashes', 'secret'), undefined)
  const numeric = Buffer.from('42').toString('base64')
  t.equal(verifySignedStream(`${numeric}--${hmacHex('secret', numeric)}`, 'secret'), undefined, 'non-string payload')
  const garbage = 'not base64 json'
  t.equal(verifySignedStream(`${garbage}--${hmacHex('secret', garbage)}`, 'secret'), undefined, 'undecodable payload')
})

t.test('safeEqual and key derivation', async (t) => {
  t.equal(safeEqual('abc', 'abc'), true)
  t.equal(safeEqual('abc', 'abd'), false)
  t.equal(safeEqual('abc', 'abcd'), false)
  t.equal(deriveBroadcastKey('s'), hmacHex('s', 'broadcast-cable'))
})

t.test('catchUp continues from history, across evictions and epochs', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 3 })
  t.teardown(() => broker.close())
  const first = await broker.publish('s', 1)
  const start = { offset: 0, epoch: first.epoch }
  let result = await catchUp(broker, 's', start)
  t.same(result.messages.map((m) => m.data), [1])
  t.same(result.position, { offset: 1, epoch: first.epoch })
  t.equal(result.gap, false)
  for (let i = 2; i <= 6; i++) await broker.publish('s', i)
  result = await catchUp(broker, 's', { offset: 1, epoch: first.epoch })
  t.same(result.messages.map((m) => m.data), [4, 5, 6])
  t.equal(result.gap, true, 'evicted messages are reported as a gap')
  result = await catchUp(broker, 's', { offset: 2, epoch: 'old-epoch' })
  t.same(result.messages.map((m) => m.data), [4, 5, 6], 'another epoch restarts from the current one')
  t.equal(result.gap, true)
  t.same(result.position, { offset: 6, epoch: first.epoch })
  result = await catchUp(broker, 'unknown', { offset: 2, epoch: 'x' })
  t.same(result, { messages: [], position: { offset: 2, epoch: 'x' }, gap: false })
})

t.test('advance ignores transient messages', async (t) => {
  const position = { offset: 3, epoch: 'e' }
  t.equal(advance(position, []), position)
  t.equal(advance(position, [{ stream: 's', offset: 0, epoch: 'e', timestamp: 0, data: 1 }]), position)
})

t.test('metrics are created once and reused', async (t) => {
  const metrics = new Metrics()
  const gauge = metrics.gauge('x_num', 'help')
  t.equal(metrics.gauge('x_num', 'help'), gauge)
  const counter = metrics.counter('y_total', 'help')
  t.equal(metrics.counter('y_total', 'help'), counter)
  gauge.set(3)
  counter.inc()
  t.match(await metrics.text(), /x_num 3/)
})

t.test('catchUp: a reader at offset 0 of a vanished epoch has a gap only if the new epoch lost messages', async (t) => {
  const broker = new MemoryBroker({ historyLimit: 2 })
  t.teardown(() => broker.close())
  await broker.publish('s', 1)
  const kept = await catchUp(broker, 's', { offset: 0, epoch: 'vanished' })
  t.equal(kept.gap, false)
  t.same(kept.messages.map((m) => m.data), [1])
  for (let i = 2; i <= 4; i++) await broker.publish('s', i)
  const lost = await catchUp(broker, 's', { offset: 0, epoch: 'vanished' })
  t.equal(lost.gap, true)
})

t.test('an Outgoing encodes once per encoder, however the calls alternate', async (t) => {
  const { Outgoing } = await import('../src/hub/protocol.js')
  const calls: string[] = []
  const json = (message: object): string => { calls.push('json'); return JSON.stringify(message) }
  const length = (message: object): number => { calls.push('length'); return JSON.stringify(message).length }
  const outgoing = new Outgoing({ identifier: 'i', message: 'm' })
  const first = outgoing.encode(json)
  t.equal(outgoing.encode(json), first, 'the same encoder again: the same result')
  t.equal(outgoing.encode(length), first.length)
  t.equal(outgoing.encode(json), first, 'back to the first encoder: still its first result')
  t.equal(outgoing.encode(length), first.length)
  t.same(calls, ['json', 'length'], 'each encoder ran once')
})
