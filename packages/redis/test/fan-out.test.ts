import { EventEmitter } from 'node:events'
import t from 'tap'
import type { StreamMessage, StreamPosition } from '@rt/core'
import { FanOut, type CatchUpRead, type LiveMessage } from '../src/fan-out.js'
import type { RedisClient } from '../src/options.js'
import { recorder, until } from './helpers.js'

// The fan-out's ordering logic with every step under the test's control: a scripted subscriber
// connection and broker stand in for Redis, so races that real traffic hits only by chance happen here on purpose.

interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (error: Error) => void
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (error: Error) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

class Subscriber extends EventEmitter {
  status = 'connecting'
  subscribes: { name: string; done: Deferred<number> }[] = []
  unsubscribed: string[] = []
  subscribe(name: string): Promise<number> {
    const done = deferred<number>()
    this.subscribes.push({ name, done })
    return done.promise
  }

  unsubscribeAnswer: Promise<number> = Promise.resolve(0)
  unsubscribe(name: string): Promise<number> {
    this.unsubscribed.push(name)
    return this.unsubscribeAnswer
  }

  disconnect(): void {
    this.status = 'end'
  }

  ack(): void {
    for (const { done } of this.subscribes.splice(0)) done.resolve(1)
  }

  lose(): void {
    this.status = 'reconnecting'
    this.emit('close')
  }

  ready(): void {
    this.status = 'ready'
    this.emit('ready')
  }

  send(name: string, offset: number, epoch: string, after = offset - 1): void {
    this.emit('message', name, JSON.stringify({ o: offset, e: epoch, a: after }))
  }
}

class Broker {
  positions: Deferred<StreamPosition>[] = []
  reads: { from: StreamPosition; channel: string; marker: string; result: Deferred<CatchUpRead> }[] = []
  position = (): Promise<StreamPosition> => {
    const result = deferred<StreamPosition>()
    this.positions.push(result)
    return result.promise
  }

  read = (_stream: string, from: StreamPosition, channel: string, marker: string): Promise<CatchUpRead> => {
    const result = deferred<CatchUpRead>()
    this.reads.push({ from, channel, marker, result })
    return result.promise
  }

  /** The marker of the oldest read, as Redis would publish it on the channel. */
  marker(subscriber: Subscriber): void {
    const { channel, marker } = this.reads[0]!
    subscriber.emit('message', channel, `{"m":"${marker}"}`)
  }

  /** Answers the oldest read with the given messages of `epoch`; returns the position it read from. */
  answer(epoch: string, offsets: number[]): StreamPosition {
    const { from, result } = this.reads.shift()!
    result.resolve({ epoch, messages: offsets.map((offset) => message(offset, epoch)) })
    return from
  }
}

function message(offset: number, epoch: string): StreamMessage {
  return { stream: 's', offset, epoch, timestamp: 0, data: null }
}

function setup(): { fanOut: FanOut; subscriber: Subscriber; broker: Broker; warnings: string[] } {
  const subscriber = new Subscriber()
  const broker = new Broker()
  const { logger, warnings } = recorder()
  const fanOut = new FanOut({
    client: { duplicate: () => subscriber } as unknown as RedisClient,
    position: broker.position,
    read: broker.read,
    channelName: (stream) => `ch:${stream}`,
    decode: (stream, payload): LiveMessage => {
      const { o, e, a } = JSON.parse(payload) as { o: number; e: string; a: number }
      return { message: { stream, offset: o, epoch: e, timestamp: 0, data: null }, after: a }
    },
    logger,
    connectionName: 'test'
  })
  return { fanOut, subscriber, broker, warnings }
}

const seen = (messages: StreamMessage[]): string[] => messages.map((m) => `${m.offset}${m.epoch}`)

/** Subscribes to 's' and lets the first set-up finish at position (offset, E). */
async function started(offset = 0): Promise<ReturnType<typeof setup> & { received: StreamMessage[]; stop: () => void }> {
  const parts = setup()
  const received: StreamMessage[] = []
  const stop = parts.fanOut.subscribe('s', (m) => received.push(m))
  parts.subscriber.ready()
  parts.broker.positions.shift()!.resolve({ offset, epoch: 'E' })
  parts.subscriber.ack()
  await tick()
  parts.broker.marker(parts.subscriber)
  parts.broker.answer('E', [])
  await tick()
  return { ...parts, received, stop }
}

t.test('a reconnect during set-up repeats the catch-up; nothing is lost or repeated', async (t) => {
  const { fanOut, subscriber, broker } = setup()
  const received: StreamMessage[] = []
  fanOut.subscribe('s', (m) => received.push(m))
  t.ok(fanOut.activating('s'), 'a publish from this process would wait for the SUBSCRIBE')
  subscriber.ready()
  broker.positions.shift()!.resolve({ offset: 0, epoch: 'E' })
  await tick()
  subscriber.lose()
  t.equal(fanOut.activating('s'), undefined, 'but not while the connection is down')
  subscriber.ready()
  subscriber.ack()
  await tick()
  broker.marker(subscriber)
  t.same(broker.answer('E', [1]), { offset: 0, epoch: 'E' })
  await tick()
  t.same(subscriber.subscribes.map((s) => s.name), ['ch:s'], 'subscribed again after the reconnect')
  subscriber.send('ch:s', 2, 'E')
  subscriber.ack()
  await tick()
  broker.marker(subscriber)
  t.same(broker.answer('E', [2]), { offset: 1, epoch: 'E' })
  await tick()
  subscriber.send('ch:s', 3, 'E')
  subscriber.send('ch:other', 1, 'E')
  t.same(seen(received), ['1E', '2E', '3E'])
})

t.test('held messages before the marker are merged with the read, later ones follow live', async (t) => {
  const { subscriber, broker, received } = await started(0)
  subscriber.send('ch:s', 2, 'E')
  t.same(seen(received), [], 'a skipped offset holds live delivery back')
  subscriber.ack()
  await tick()
  subscriber.send('ch:s', 0, 'E', 2)
  subscriber.emit('message', 'ch:s', '{"m":"another node"}')
  broker.marker(subscriber)
  subscriber.send('ch:s', 0, 'E', 3)
  subscriber.send('ch:s', 4, 'E')
  subscriber.send('ch:s', 6, 'E')
  subscriber.send('ch:s', 7, 'E')
  t.same(broker.answer('E', [1, 2, 3]), { offset: 0, epoch: 'E' })
  await tick()
  t.same(seen(received), ['1E', '2E', '0E', '3E', '0E', '4E'], 'up to the gap after the marker')
  subscriber.ack()
  await tick()
  broker.marker(subscriber)
  t.same(broker.answer('E', [5, 6]), { offset: 4, epoch: 'E' }, 'read again for the gap')
  await tick()
  subscriber.send('ch:s', 8, 'E')
  t.same(seen(received), ['1E', '2E', '0E', '3E', '0E', '4E', '5E', '6E', '7E', '8E'])
})

t.test('a marker lost with the connection: every held message counts as covered', async (t) => {
  const { subscriber, broker, received } = await started(0)
  subscriber.send('ch:s', 2, 'E')
  subscriber.ack()
  await tick()
  subscriber.lose()
  broker.answer('E', [1, 2, 3])
  await tick()
  t.same(seen(received), ['1E', '2E', '3E'])
})

t.test('held messages of the old epoch come before a read that already shows a reset', async (t) => {
  const { subscriber, broker, received } = await started(5)
  subscriber.lose()
  subscriber.ready()
  subscriber.send('ch:s', 6, 'E')
  subscriber.send('ch:s', 1, 'F')
  subscriber.send('ch:s', 0, 'F', 1)
  subscriber.ack()
  await tick()
  broker.marker(subscriber)
  t.same(broker.answer('F', [1, 2]), { offset: 5, epoch: 'E' })
  await tick()
  t.same(seen(received), ['6E', '1F', '0F', '2F'])
})

t.test('a read in the old epoch comes before held messages of a newer one', async (t) => {
  const { subscriber, broker, received } = await started(5)
  subscriber.lose()
  subscriber.ready()
  subscriber.send('ch:s', 1, 'F')
  subscriber.ack()
  await tick()
  broker.marker(subscriber)
  broker.answer('E', [6, 7])
  await tick()
  t.same(seen(received), ['6E', '7E', '1F'])
})

t.test('the last listener leaving stops a repeated set-up before it subscribes again', async (t) => {
  const { fanOut, subscriber, broker } = setup()
  const stop = fanOut.subscribe('s', () => undefined)
  subscriber.ready()
  broker.positions.shift()!.resolve({ offset: 0, epoch: 'E' })
  subscriber.lose()
  subscriber.ready()
  subscriber.ack()
  await tick()
  stop()
  broker.marker(subscriber)
  broker.answer('E', [1])
  await tick()
  t.equal(broker.reads.length, 0, 'the catch-up in flight finished')
  t.same(subscriber.subscribes, [], 'no SUBSCRIBE after the UNSUBSCRIBE')
  t.same(subscriber.unsubscribed, ['ch:s'])
  t.equal(fanOut.size, 0)
})

t.test('a failed set-up is retried with backoff, silently once nobody listens', async (t) => {
  const { fanOut, subscriber, broker, warnings } = setup()
  const received: StreamMessage[] = []
  fanOut.subscribe('s', (m) => received.push(m))
  subscriber.ready()
  broker.positions.shift()!.reject(new Error('down'))
  await tick()
  t.match(warnings, [/catching up stream s failed; retrying/])
  await until(() => broker.positions.length === 1, 'the retry')
  broker.positions.shift()!.reject(new Error('still down'))
  await tick()
  t.equal(warnings.length, 1, 'one warning per failure streak')
  await until(() => broker.positions.length === 1, 'the second retry')
  broker.positions.shift()!.resolve({ offset: 0, epoch: 'E' })
  subscriber.ack()
  await tick()
  broker.reads.shift()!.result.reject(new Error('down again'))
  await until(() => subscriber.subscribes.length === 1, 'the third retry')
  subscriber.ack()
  await tick()
  broker.marker(subscriber)
  broker.answer('E', [1])
  await tick()
  t.same(seen(received), ['1E'])

  const other = fanOut.subscribe('t', () => undefined)
  other()
  broker.positions.shift()!.reject(new Error('down'))
  await tick()
  t.equal(warnings.length, 1, 'a stream nobody listens to any more is not retried')
  await fanOut.close()
  t.equal(subscriber.status, 'end')
})

t.test('a failed UNSUBSCRIBE is logged, unless the broker is closing', async (t) => {
  const { subscriber, stop, warnings, fanOut } = await started()
  subscriber.unsubscribeAnswer = Promise.reject(new Error('connection lost'))
  stop()
  await tick()
  t.match(warnings, [/unsubscribing from s failed/])
  const closing = deferred<number>()
  subscriber.unsubscribeAnswer = closing.promise
  fanOut.subscribe('u', () => undefined)()
  await fanOut.close()
  closing.reject(new Error('Connection is closed.'))
  await tick()
  t.equal(warnings.length, 1)
})

t.test('closing during a catch-up lets it finish without delivering', async (t) => {
  const { fanOut, subscriber, broker } = setup()
  const received: StreamMessage[] = []
  fanOut.subscribe('s', (m) => received.push(m))
  subscriber.ready()
  broker.positions.shift()!.resolve({ offset: 0, epoch: 'E' })
  subscriber.ack()
  await tick()
  t.equal(broker.reads.length, 1, 'waiting for the read and its marker')
  await fanOut.close()
  broker.answer('E', [1])
  await tick()
  t.same(received, [])
})
