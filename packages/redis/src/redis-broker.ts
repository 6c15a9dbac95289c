import {
  encodeMessageData,
  BrokerUnavailableError,
  newEpoch,
  RetentionRules,
  type RetentionPolicy,
  type StreamSelector,
  type Broker,
  type HistoryQuery,
  type HistoryResult,
  type MessageMeta,
  type PublishOptions,
  type StreamListener,
  type StreamMessage,
  type StreamPosition
} from '@rt/core'
import { Cluster } from 'ioredis'
import { brokerScript } from './broker-script.js'
import { Connection } from './connection.js'
import { FanOut, type CatchUpRead, type LiveMessage } from './fan-out.js'
import { streamKeys } from './keys.js'
import { checkCommon, fail, type RedisBrokerOptions } from './options.js'
import { RedisPresenceStore } from './redis-presence.js'

/** What a history entry and a pub/sub message carry besides their position. */
interface Body {
  data: unknown
  meta?: MessageMeta
}

type Entry = [id: string, fields: string[]]

/** Publishes to one stream, queued in the current task, sent as one script run. */
interface PendingBatch {
  stream: string
  items: Array<{ body: string; transient: boolean; resolve: (assigned: [number, string, number]) => void; reject: (error: unknown) => void }>
}

/**
 * Default of `publishBatch`. One script run of 100 publishes keeps Redis busy
 * for well under a millisecond, and takes most of the per-run cost off each
 * publish (see bench/README.md, "Redis publish batching").
 */
export const DEFAULT_PUBLISH_BATCH = 100

function seconds(value: unknown, name: string, fallback: number): number {
  const result = value ?? fallback
  if (typeof result !== 'number' || !(result > 0)) fail(`${name} must be a positive number of seconds (or Infinity)`)
  return result
}

function ms(secondsValue: number): number {
  return Number.isFinite(secondsValue) ? Math.max(1, Math.round(secondsValue * 1000)) : -1
}

/**
 * A `Broker` on Redis Streams, for several Fastify processes sharing one Redis:
 * publish on any node, receive and read history on every node.
 *
 * - One round trip per publish: a Lua script assigns the stream's next offset,
 *   appends to its history (bounded by `historyLimit` and `historyTtl`) and
 *   PUBLISHes it, atomically, so every node sees one order.
 * - The epoch of a stream lives in Redis, shared by all nodes and kept across
 *   restarts; a new one starts only when the stream's keys are really gone
 *   (expired after `streamTtl`, flushed, deleted).
 * - Live delivery uses one subscriber connection per broker, whatever the
 *   number of streams and listeners; see {@link FanOut} for the ordering and
 *   catch-up guarantees across reconnects.
 * - During an outage calls reject with `BrokerUnavailableError` at once; ioredis
 *   reconnects in the background and live subscriptions catch up from history.
 */
export class RedisBroker implements Broker {
  readonly keyPrefix: string
  readonly historyLimit: number
  /** History TTL in ms, `Infinity` for none. */
  readonly historyTtlMs: number
  /** Key TTL in ms, `Infinity` for none. */
  readonly streamTtlMs: number
  private readonly connection: Connection
  private readonly fanOut: FanOut
  private readonly retention: RetentionRules
  /** The script's limits (history count, history ms, key ms) by policy, computed once each. */
  private readonly limits = new WeakMap<RetentionPolicy, [number, number, number]>()
  private readonly defaultStreamTtl: number
  /** The fan-out command: SPUBLISH (sharded pub/sub) on a Cluster unless `pubsub: 'classic'`, else PUBLISH. */
  private readonly publishCommand: 'PUBLISH' | 'SPUBLISH'
  private closed = false
  /** Most publishes to one stream sent in one script run. */
  private readonly publishBatch: number
  /** Publishes made in the current task, not sent yet: runs of one stream, in call order. */
  private pending: PendingBatch[] = []
  private readonly flushPending = (): void => this.flush()
  /** Presence sets in Redis, shared by every process on this Redis and prefix. */
  readonly presence: RedisPresenceStore

  constructor(options: RedisBrokerOptions) {
    this.keyPrefix = checkCommon(options)
    const historyLimit = options.historyLimit ?? 100
    if (!Number.isInteger(historyLimit) || historyLimit < 0) fail('historyLimit must be a non-negative integer')
    const historyTtl = seconds(options.historyTtl, 'historyTtl', 300)
    const streamTtl = seconds(options.streamTtl, 'streamTtl', historyTtl * 10)
    this.historyLimit = historyLimit
    this.historyTtlMs = historyTtl * 1000
    this.streamTtlMs = streamTtl * 1000
    this.retention = new RetentionRules({ historyLimit, historyTtl })
    this.defaultStreamTtl = streamTtl
    const publishBatch = options.publishBatch ?? DEFAULT_PUBLISH_BATCH
    if (!Number.isInteger(publishBatch) || publishBatch < 1) fail('publishBatch must be a positive integer')
    this.publishBatch = publishBatch
    const pubsub = options.pubsub ?? 'sharded'
    if (pubsub !== 'sharded' && pubsub !== 'classic') fail("pubsub must be 'sharded' or 'classic'")
    this.connection = new Connection(options, 'command')
    const sharded = pubsub === 'sharded' && this.connection.client instanceof Cluster
    this.publishCommand = sharded ? 'SPUBLISH' : 'PUBLISH'
    this.presence = new RedisPresenceStore(this.connection, this.keyPrefix)
    this.fanOut = new FanOut({
      client: this.connection.client,
      position: (stream) => this.position(stream),
      read: (stream, from, channel, marker) => this.catchUp(stream, from, channel, marker),
      channelName: (stream) => streamKeys(this.keyPrefix, stream).channel,
      decode: (stream, payload) => decodeLive(stream, payload),
      logger: this.connection.logger,
      connectionName: this.connection.connectionName,
      sharded
    })
  }

  /** Number of streams this process receives live (one SUBSCRIBE each, all on one connection). */
  get liveStreams(): number {
    return this.fanOut.size
  }

  publish(stream: string, data: unknown, options: PublishOptions = {}): Promise<StreamMessage> {
    const meta = options.transient ? { ...options.meta, transient: true } : options.meta
    const transient = meta?.transient === true
    let body: string
    let json: string
    try {
      // Encoded once, here (undefined is null); readers on every node write this text as is.
      json = options.json ?? encodeMessageData(data)
      body = `{"data":${json}${meta === undefined ? '' : `,"meta":${JSON.stringify(meta)}`}}`
    } catch (error) {
      return Promise.reject(error)
    }
    const send = (): Promise<StreamMessage> => this.queue(stream, body, transient).then(([offset, epoch, timestamp]) => {
      const message: StreamMessage = { stream, offset, epoch, timestamp, data, json }
      if (meta !== undefined) message.meta = meta
      return message
    })
    // Wait until this process listens to the stream if it just started to, so its own listeners get the message live.
    const activating = this.closed ? undefined : this.fanOut.activating(stream)
    return activating === undefined ? send() : activating.then(send)
  }

  /** Per-stream retention (see `Broker.setRetention`); a policy's keys live 10 × its `historyTtl` (forever for `Infinity`). */
  setRetention(applies: StreamSelector, policy: RetentionPolicy): () => void {
    return this.retention.add(applies, policy, '@rt/redis')
  }

  subscribe(stream: string, listener: StreamListener): () => void {
    if (this.closed) throw new BrokerUnavailableError('@rt/redis: subscribe failed: the broker is closed')
    return this.fanOut.subscribe(stream, listener)
  }

  history(stream: string, query: HistoryQuery): Promise<HistoryResult> {
    const keys = streamKeys(this.keyPrefix, stream)
    let args: (string | number)[]
    try {
      const limit = count(query.limit ?? Infinity)
      args = 'since' in query
        ? ['since', number(query.since, 'since'), '', limit]
        : ['after', number(query.after.offset, 'after.offset'), String(query.after.epoch), limit]
    } catch (error) {
      return Promise.reject(error)
    }
    return this.run('history', keys, ['', ...this.limitsOf(stream), ...args]).then((reply) => {
      const [epoch, lastOffset, complete, entries] = reply as [string, number, number, Entry[]]
      if (epoch === '') return { messages: [], epoch: '', lastOffset: 0, complete: 'since' in query }
      return { messages: entries.map((entry) => decodeEntry(stream, epoch, entry)), epoch, lastOffset, complete: complete === 1 }
    })
  }

  position(stream: string): Promise<StreamPosition> {
    return this.run('position', streamKeys(this.keyPrefix, stream), [newEpoch(), ...this.limitsOf(stream)]).then((reply) => {
      const [offset, epoch] = reply as [number, string]
      return { offset, epoch }
    })
  }

  remove(stream: string, offsets: readonly number[]): Promise<void> {
    const ids = offsets.filter((offset) => Number.isSafeInteger(offset) && offset > 0).map((offset) => `${offset}-0`)
    const { history } = streamKeys(this.keyPrefix, stream)
    this.flush()
    return this.connection.call('remove', () => ids.length === 0 ? Promise.resolve() : this.connection.client.xdel(history, ...ids).then(() => undefined))
  }

  /** The fan-out's catch-up read: history after `from` plus a marker on `channel`, atomically (see {@link FanOut}). */
  private catchUp(stream: string, from: StreamPosition, channel: string, marker: string): Promise<CatchUpRead> {
    const args = [from.offset, from.epoch, channel, marker, this.publishCommand]
    return this.run('catchup', streamKeys(this.keyPrefix, stream), ['', ...this.limitsOf(stream), ...args]).then((reply) => {
      const [epoch, entries] = reply as [string, Entry[]]
      return { epoch, messages: entries.map((entry) => decodeEntry(stream, epoch, entry)) }
    })
  }

  /** Closes the subscriber connection, and the command connection when it was created from `url`. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.presence.close()
    await this.fanOut.close()
    await this.connection.close()
  }

  /**
   * Queues a publish for the end of the current task: consecutive publishes to
   * one stream go to Redis as one script run (at most `publishBatch`), which
   * assigns their offsets in call order. Calls keep their order across streams
   * and with every other operation of this broker (see {@link flush}).
   */
  private queue(stream: string, body: string, transient: boolean): Promise<[offset: number, epoch: string, timestamp: number]> {
    // Refused at once when Redis is unreachable, and queued after the first connection while it is being made.
    let waiting: Promise<void> | undefined
    try {
      waiting = this.connection.ready('publish')
    } catch (error) {
      return Promise.reject(error)
    }
    if (waiting !== undefined) return waiting.then(() => this.queue(stream, body, transient))
    return new Promise((resolve, reject) => {
      let batch = this.pending.at(-1)
      if (batch === undefined || batch.stream !== stream || batch.items.length >= this.publishBatch) {
        if (this.pending.length === 0) queueMicrotask(this.flushPending)
        this.pending.push((batch = { stream, items: [] }))
      }
      batch.items.push({ body, transient, resolve, reject })
    })
  }

  /**
   * Sends the queued publishes, one script run per batch, in the order they
   * were made. Called at the end of the task that queued them, and before any
   * other operation of this broker is sent, so a read made after a publish
   * still sees it.
   */
  private flush(): void {
    const batches = this.pending
    if (batches.length === 0) return
    this.pending = []
    for (const { stream, items } of batches) {
      const keys = streamKeys(this.keyPrefix, stream)
      const args: (string | number)[] = [newEpoch(), ...this.limitsOf(stream), keys.channel, items[0]!.body, items[0]!.transient ? '1' : '0', this.publishCommand]
      for (let i = 1; i < items.length; i++) args.push(items[i]!.body, items[i]!.transient ? '1' : '0')
      this.send('publish', keys, args).then((reply) => {
        const [first, epoch, timestamp, ...rest] = reply as [number, string, number, ...number[]]
        items[0]!.resolve([first, epoch, timestamp])
        for (let i = 1; i < items.length; i++) items[i]!.resolve([rest[i - 1]!, epoch, timestamp])
      }, (error: unknown) => {
        for (const item of items) item.reject(error)
      })
    }
  }

  private limitsOf(stream: string): [number, number, number] {
    const policy = this.retention.for(stream)
    let limits = this.limits.get(policy)
    if (limits === undefined) {
      const streamTtl = policy === this.retention.fallback ? this.defaultStreamTtl : policy.historyTtl * 10
      this.limits.set(policy, (limits = [policy.historyLimit, ms(policy.historyTtl), ms(streamTtl)]))
    }
    return limits
  }

  /** Runs a script operation other than publish, after the publishes queued before it. */
  private run(op: string, keys: { meta: string; history: string }, args: (string | number)[]): Promise<unknown> {
    this.flush()
    return this.send(op, keys, args)
  }

  private send(op: string, keys: { meta: string; history: string }, args: (string | number)[]): Promise<unknown> {
    return this.connection.call(op, () => brokerScript.run(this.connection.client, [keys.meta, keys.history], [op, ...args]))
  }
}

function number(value: unknown, name: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) fail(`history: ${name} must be a number`)
  return value
}

function count(limit: number): number {
  if (limit === Infinity) return -1
  if (!Number.isInteger(limit) || limit < 0) fail('history: limit must be a non-negative integer')
  return limit
}

function decodeBody(text: string): Body {
  return JSON.parse(text) as Body
}

/**
 * The data's JSON text inside a body `{"data":<json>,"meta"?:…}` ending at
 * `end`, cut out as `publish` wrote it (never encoded again). Re-encoding the
 * parsed meta gives back the text publish wrote (plain strings and booleans);
 * `,"meta":` is 8 characters.
 */
function dataText(text: string, start: number, end: number, body: Body): string {
  const metaLength = body.meta === undefined ? 0 : 8 + JSON.stringify(body.meta).length
  return text.slice(start + '{"data":'.length, end - 1 - metaLength)
}

function withMeta(message: StreamMessage, body: Body): StreamMessage {
  if (body.meta !== undefined) message.meta = body.meta
  return message
}

function decodeEntry(stream: string, epoch: string, [id, fields]: Entry): StreamMessage {
  const text = fields[3]!
  const body = decodeBody(text)
  return withMeta({ stream, offset: Number.parseInt(id, 10), epoch, timestamp: Number(fields[1]), data: body.data, json: dataText(text, 0, text.length, body) }, body)
}

/** Decodes what the publish script PUBLISHes: `{"o":offset,"a":after,"e":epoch,"t":ms,"b":body}`. */
export function decodeLive(stream: string, payload: string): LiveMessage {
  const { o, a, e, t, b } = JSON.parse(payload) as { o: number; a: number; e: string; t: number; b: Body }
  if (typeof o !== 'number' || typeof e !== 'string' || typeof b !== 'object' || b === null) {
    throw new TypeError('not an rt message')
  }
  // The body is the last field, written verbatim by the publish script after the numbers and the (base64url) epoch.
  const json = dataText(payload, payload.indexOf(',"b":') + 5, payload.length - 1, b)
  return { message: withMeta({ stream, offset: o, epoch: e, timestamp: t, data: b.data, json }, b), after: a }
}
