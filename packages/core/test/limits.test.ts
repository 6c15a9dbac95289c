// Issue 14: bounded input at every core entry point; whatever is accepted can be written out again.
import Fastify from 'fastify'
import t from 'tap'
import { messageJson, type StreamMessage } from '../src/broker.js'
import { broadcastReply, encodeDataPayload, encodeServerMessage } from '../src/hub/protocol.js'
import { parseCommand, parseJsonl, validateCommand } from '../src/hub/commands.js'
import { decodeBroadcastData } from '../src/broadcast.js'
import {
  DEFAULT_LIMITS, MAX_STORED_JSON_DEPTH, encodeMessageData, exceedsJsonDepth, identifierProblem, nameProblem, parseBoundedJson, resolveLimits
} from '../src/limits.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { rtCore } from '../src/plugin.js'

/** JSON text nested `depth` levels: `[[[…]]]`. */
const deep = (depth: number, open = '[', close = ']'): string => open.repeat(depth) + close.repeat(depth)

t.test('exceedsJsonDepth counts brackets outside strings, without recursion', async (t) => {
  t.equal(exceedsJsonDepth(deep(100), 100), false)
  t.equal(exceedsJsonDepth(deep(101), 100), true)
  t.equal(exceedsJsonDepth(deep(1_000_000), 100), true, 'a million levels: no stack overflow')
  t.equal(exceedsJsonDepth(`"${'['.repeat(500)}"`, 10), false, 'brackets inside a string do not count')
  t.equal(exceedsJsonDepth(`["\\"${'['.repeat(500)}"]`, 10), false, 'an escaped quote does not end the string')
  t.equal(exceedsJsonDepth(`{"a":${deep(20, '{"b":', '}')}}`.replace(/\{"b":\}/g, '{"b":1}'), 10), true)
  t.equal(exceedsJsonDepth(' '.repeat(1000), 10), false)
  t.equal(exceedsJsonDepth(`["\\\\",${deep(20)}]`, 10), true, 'an escaped backslash ends before the closing quote')
  t.equal(exceedsJsonDepth(`["${'x'.repeat(300)}`, 10), false, 'an unterminated string: malformed, left to JSON.parse')
})

t.test('parseBoundedJson refuses deep or malformed text', async (t) => {
  t.same(parseBoundedJson('{"a":[1]}', 2), { ok: true, value: { a: [1] } })
  t.same(parseBoundedJson(deep(6000), 100), { ok: false, error: 'JSON nested deeper than 100 levels' })
  t.same(parseBoundedJson('{', 100), { ok: false, error: 'malformed JSON' })
})

t.test('names and identifiers', async (t) => {
  t.equal(nameProblem('a'.repeat(1024), DEFAULT_LIMITS), undefined)
  t.equal(nameProblem('a'.repeat(1025), DEFAULT_LIMITS), 'stream name longer than 1024 characters')
  t.equal(nameProblem('abc', { maxNameLength: 2 }, 'category'), 'category longer than 2 characters')
  t.equal(identifierProblem('{"channel":"C"}', DEFAULT_LIMITS), undefined)
  t.match(identifierProblem('x'.repeat(8193), DEFAULT_LIMITS), /longer than 8192/)
  t.match(identifierProblem(`{"channel":"C","p":${deep(200)}}`, DEFAULT_LIMITS), /nested deeper than 100/)
})

t.test('limits are options, validated', async (t) => {
  t.same(resolveLimits(undefined), DEFAULT_LIMITS)
  t.equal(resolveLimits({ maxNameLength: 10, maxJsonDepth: undefined }).maxNameLength, 10)
  t.throws(() => resolveLimits(null as never), /limits must be an object/)
  t.throws(() => resolveLimits({ maxNameLenght: 1 } as never), /maxNameLenght is not a known limit/)
  t.throws(() => resolveLimits({ maxCommandsPerBody: 0 }), /maxCommandsPerBody must be a positive integer/)
  t.throws(() => resolveLimits({ maxJsonDepth: MAX_STORED_JSON_DEPTH + 1 }), /maxJsonDepth must be at most 1000/)
  const app = Fastify()
  await t.rejects(async () => { await app.register(rtCore, { limits: { maxJsonDepth: 1.5 } }).ready() }, /@rt\/core: limits.maxJsonDepth must be a positive integer/)
  const ok = Fastify()
  await ok.register(rtCore, { limits: { maxNameLength: 5 } })
  t.equal(ok.rt.limits.maxNameLength, 5)
  t.equal(ok.rt.hub.limits.maxNameLength, 5, 'the hub parses with the same limits')
  await ok.close()
})

t.test('a message is encoded once, when accepted; what cannot be encoded is refused before it takes an offset', async (t) => {
  const broker = new MemoryBroker()
  t.teardown(() => broker.close())
  const message = await broker.publish('s', { a: [1, 'two'] })
  t.equal(message.json, '{"a":[1,"two"]}')
  t.equal((await broker.publish('s', undefined)).json, 'null')
  t.equal((await broker.publish('s', 'x', { json: '"x"' })).json, '"x"', 'a caller that holds the text already passes it')
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  await t.rejects(broker.publish('s', cyclic), /message data cannot be encoded as JSON/)
  await t.rejects(broker.publish('s', 10n), /cannot be encoded/)
  await t.rejects(broker.publish('s', JSON.parse(deep(MAX_STORED_JSON_DEPTH + 1))), /nested deeper than 1000 levels/)
  let tooDeepForStringify: unknown = 1
  for (let i = 0; i < 20_000; i++) tooDeepForStringify = [tooDeepForStringify]
  await t.rejects(broker.publish('s', tooDeepForStringify), /cannot be encoded as JSON/, 'a stack overflow is a refusal, not a stored poison')
  t.equal((await broker.position('s')).offset, 3, 'refused publications took no offset')
  t.equal(messageJson({ data: { b: 1 } }), '{"b":1}', 'a message built by hand is encoded when read')
  t.equal(encodeMessageData(() => 1), 'null')
})

t.test('broadcast replies are written around the stored text, byte for byte what JSON.stringify gives', async (t) => {
  const base: StreamMessage = { stream: 's/1', offset: 3, epoch: 'E', timestamp: 1, data: { x: [1] }, json: '{"x":[1]}' }
  for (const message of [base, { ...base, meta: { broadcast_type: 'note' } }, { ...base, offset: 0 }, { ...base, data: 'str', json: '"str"' }]) {
    const reply = broadcastReply('{"channel":"C"}', message)
    t.equal(encodeServerMessage(reply), JSON.stringify(reply))
    t.equal(encodeDataPayload(reply), JSON.stringify(reply.message))
  }
  // The stored text is what is written: the payload is never serialised again.
  const reply = broadcastReply('id', { ...base, json: '{"x": [1]}' })
  t.equal(encodeServerMessage(reply), '{"identifier":"id","message":{"x": [1]},"stream_id":"s/1","epoch":"E","offset":3}')
  t.equal(encodeServerMessage({ type: 'ping', message: 1 }), '{"type":"ping","message":1}')
  t.equal(encodeDataPayload({ identifier: 'id', message: undefined }), 'null')
})

t.test('commands: deep lines and identifiers, long identifiers, too many positions, too many commands', async (t) => {
  t.same(parseCommand(`{"command":"subscribe","identifier":"{}","x":${deep(6000)}}`), { ok: false, error: 'JSON nested deeper than 100 levels' })
  const deepIdentifier = JSON.stringify({ command: 'subscribe', identifier: `{"channel":"C","p":${deep(3000)}}` })
  t.match(parseCommand(deepIdentifier), { ok: false, error: /identifier nested deeper than 100 levels/ })
  t.match(validateCommand({ command: 'unsubscribe', identifier: 'x'.repeat(9000) }), { ok: false, error: /identifier longer than 8192/ })
  const streams = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`s${i}`, { offset: 1, epoch: 'E' }]))
  t.match(validateCommand({ command: 'history', identifier: '{"channel":"C"}', history: { streams } }), { ok: false, status: 413, error: /more than 256 streams/ })
  t.match(validateCommand({ command: 'pong' }), { ok: true })
  const body = Array.from({ length: 10_000 }, () => '{"command":"pong"}').join('\n')
  const lines = parseJsonl(body)
  t.equal(lines.length, 101, 'parsing stops at the first command over the limit')
  t.same(lines.at(-1), { line: 101, result: { ok: false, error: 'more than 100 commands in one body', status: 413 } })
  t.equal(parseJsonl(body, { ...DEFAULT_LIMITS, maxCommandsPerBody: 10_000 }).length, 10_000)
})

t.test('/_broadcast data: JSON as received, a raw string as a JSON string, text with a line break re-encoded', async (t) => {
  t.same(decodeBroadcastData('{"a":1}'), { value: { a: 1 }, json: '{"a":1}' })
  t.same(decodeBroadcastData('{\n"a":1}'), { value: { a: 1 }, json: undefined }, 'JSON Lines readers need one line: encoded by the broker')
  t.same(decodeBroadcastData('<b>html</b>'), { value: '<b>html</b>', json: undefined })
  t.same(decodeBroadcastData('['.repeat(500)), { value: '['.repeat(500), json: undefined }, 'not JSON: a plain string, however many brackets')
  t.equal(decodeBroadcastData(deep(500)), undefined, 'deep JSON is refused')
  t.equal(decodeBroadcastData(deep(500), 1000)?.json, deep(500))
})
