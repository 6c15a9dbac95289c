import t from 'tap'
import { createSseParser, type SseEvent } from '../src/sse-parser.js'
import { identifierOf } from '../src/identifier.js'

t.test('parses events split across chunks, with every line ending', async (t) => {
  const events: SseEvent[] = []
  const feed = createSseParser((event) => events.push(event))
  feed('event: welcome\ndata: {"type":"wel')
  feed('come"}\n\n: comment\n\ndata: a\r\ndata: b\r\nid: 1/e/s\r\n\r')
  feed('\ndata\nretry: 1000\nretry: x\nunknown: 1\n\n')
  feed('event: empty\n\n')
  t.same(events, [
    { event: 'welcome', data: '{"type":"welcome"}', id: undefined, retry: undefined },
    { event: 'message', data: 'a\nb', id: '1/e/s', retry: undefined },
    { event: 'message', data: '', id: '1/e/s', retry: 1000 },
    { event: 'empty', data: '', id: '1/e/s', retry: undefined }
  ])
  feed('data:no-space\r\rdata: x')
  t.equal(events.at(-1)!.data, 'no-space', 'a lone CR ends a line; an unfinished event waits')
})

t.test('identifiers match AnyCable (sorted keys, no spaces)', async (t) => {
  t.equal(identifierOf({ channel: 'ChatChannel', params: { room: 'a', id: 1 } }), '{"channel":"ChatChannel","id":1,"room":"a"}')
  t.equal(identifierOf({ stream: 'chat_1' }), '{"channel":"$pubsub","stream_name":"chat_1"}')
  t.equal(identifierOf({ signedStream: 'x--y' }), '{"channel":"$pubsub","signed_stream_name":"x--y"}')
})
