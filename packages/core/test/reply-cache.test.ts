import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { buildIdentifier, type Outgoing } from '../src/hub/protocol.js'
import { REPLY_CACHE_MESSAGES } from '../src/hub/session.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { makeHub, request, tick } from './helpers.js'

// The collector, for a test about what is kept alive (the flag must be set before the context is made).
setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

t.test('a reply made for a live delivery is not kept for as long as its message stays in history', async (t) => {
  // History long enough that the first message stays retained through the whole test.
  const broker = new MemoryBroker({ historyLimit: REPLY_CACHE_MESSAGES + 10 })
  const { hub } = makeHub(t, { broker, publicStreams: true })
  let first: WeakRef<Outgoing> | undefined
  let delivered = 0
  const sink = {
    send: (outgoing: Outgoing): void => {
      if (!('identifier' in outgoing.message) || !('offset' in outgoing.message)) return
      delivered++
      first ??= new WeakRef(outgoing)
    }
  }
  const result = await hub.connect(request(), sink)
  if (!('session' in result)) throw new Error('rejected')
  await result.session.handle({ command: 'subscribe', identifier: buildIdentifier({ channel: '$pubsub', stream_name: 'kept' }) })
  for (let i = 0; i <= REPLY_CACHE_MESSAGES; i++) await broker.publish('kept', i)
  t.equal(delivered, REPLY_CACHE_MESSAGES + 1)
  t.equal((await broker.history('kept', { after: { offset: 0, epoch: (await broker.position('kept')).epoch } })).messages.length, REPLY_CACHE_MESSAGES + 1, 'the first message is still in history')
  // A WeakRef's target survives the job that made it: collect in a later one.
  await tick()
  collect()
  await tick()
  t.equal(first?.deref(), undefined, 'its reply (with every encoding of it) was let go')
})
