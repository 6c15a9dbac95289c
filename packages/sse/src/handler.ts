import type { FastifyReply, FastifyRequest } from 'fastify'
import {
  BROKER_UNAVAILABLE,
  DEFAULT_LIMITS,
  parseJsonl,
  replyUnavailable,
  type CommandLimits,
  type Limits,
  disconnectMessage,
  pingOptions,
  type Command,
  type Hub,
  type Outgoing,
  type PingPrecision,
  type Session,
  type SessionSink,
  type StreamPosition,
  type SubscribeCommand
} from '@rt/core'
import { SseConnection, type ConnectionOwner, type ConnectionSettings } from './connection.js'
import { parseResume } from './cursor.js'
import { messageType } from './encoder.js'
import type { ResolvedOptions } from './options.js'
import { parseQuery } from './query.js'

const TEXT = 'text/plain; charset=utf-8'

/** What the plugin shares with its requests: the open streams, for shutdown and the metric. */
export class Streams {
  /** Open connections. */
  readonly open = new Set<SseConnection>()
  /** Session closes under way (unsubscribed callbacks, saving), awaited on shutdown. */
  readonly closing = new Set<Promise<void>>()
  shuttingDown = false

  constructor(readonly gauge: { inc(): void; dec(): void }) {}

  /** Ends every stream with `disconnect` `server_restart` (reconnect true) and waits for their sessions to close. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true
    for (const connection of [...this.open]) connection.end()
    while (this.closing.size > 0) await Promise.all([...this.closing])
  }

  track(promise: Promise<void>): void {
    this.closing.add(promise)
    void promise.finally(() => this.closing.delete(promise))
  }
}

/** What a request asks for, once parsed: subscribe commands and how to write the stream. */
interface StreamRequest {
  commands: SubscribeCommand[]
  format: 'get' | 'post'
  raw: boolean
}

type Parsed = { ok: true; stream: StreamRequest } | { ok: false; error: string; status?: number }

/** GET: identifiers from the query, history from `history_since` and `Last-Event-ID`. */
export function fromQuery(request: FastifyRequest, limits: Pick<Limits, 'maxCursorStreams'> = DEFAULT_LIMITS): Parsed {
  const parsed = parseQuery(request.query)
  if (!parsed.ok) return parsed
  const { identifiers, historySince, raw, lastEventId } = parsed.request
  const header = request.headers['last-event-id']
  const fromHeader = typeof header === 'string' && header !== ''
  const id = fromHeader ? header : lastEventId
  let streams: Record<string, StreamPosition> | undefined
  if (id !== undefined && id !== '') {
    const resume = parseResume(id, limits.maxCursorStreams)
    // Too many positions in the header is a header too large (431); in the query string, a bad request.
    if (!resume.ok) return resume.tooMany === true && fromHeader ? { ...resume, status: 431 } : resume
    if (Object.keys(resume.streams).length > 0) streams = resume.streams
  }
  const since = historySince !== undefined && historySince > 0 ? historySince : undefined
  const history = streams === undefined && since === undefined ? undefined : { ...(since === undefined ? {} : { since }), ...(streams === undefined ? {} : { streams }) }
  const commands = identifiers.map((identifier): SubscribeCommand => history === undefined
    ? { command: 'subscribe', identifier }
    : { command: 'subscribe', identifier, history })
  return { ok: true, stream: { commands, format: 'get', raw } }
}

/** POST: one subscribe command per JSONL line (with its own `history`), whatever the Content-Type. */
export function fromBody(body: unknown, limits: CommandLimits = DEFAULT_LIMITS): Parsed {
  const commands: SubscribeCommand[] = []
  const lines: number[] = []
  // Every line is parsed first, so a body over the command limit is answered 413 whatever else is wrong with it.
  for (const { line, result } of parseJsonl(typeof body === 'string' ? body : '', limits)) {
    if (!result.ok) return { ok: false, error: `line ${line}: ${result.error}`, status: result.status ?? 400 }
    if (result.command.command !== 'subscribe') return { ok: false, error: `line ${line}: only subscribe commands open a stream` }
    commands.push(result.command)
    lines.push(line)
  }
  // The hub confirms a repeated subscribe again (a client re-subscribing after a restore); in one body it is a mistake.
  const seen = new Set<string>()
  for (const [index, { identifier }] of commands.entries()) {
    if (seen.has(identifier)) return { ok: false, error: `line ${lines[index]!}: ${identifier}: already subscribed` }
    seen.add(identifier)
  }
  return { ok: true, stream: { commands, format: 'post', raw: false } }
}

/**
 * The HTTP side of the SSE endpoint: parse and validate, authenticate and
 * subscribe through the hub while holding every message back, then answer
 * 401/400 or open the stream.
 */
export function sseHandler(hub: Hub, options: ResolvedOptions, streams: Streams) {
  return async function handle(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    switch (request.method) {
      case 'OPTIONS':
        // A CORS preflight was answered by @fastify/cors already; any other OPTIONS gets 200, as AnyCable.
        return reply.code(200).send()
      case 'GET':
        return openStream(request, reply, fromQuery(request, hub.limits))
      case 'POST': {
        const sid = request.headers['x-rt-sid']
        if (options.remoteCommands && typeof sid === 'string') return remoteCommands(sid, request.body, reply)
        return openStream(request, reply, fromBody(request.body, hub.limits))
      }
      default:
        return reply.code(405).header('allow', 'GET, POST, OPTIONS').send()
    }
  }

  async function remoteCommands(sid: string, body: unknown, reply: FastifyReply): Promise<unknown> {
    const commands: Command[] = []
    for (const { line, result } of parseJsonl(typeof body === 'string' ? body : '', hub.limits)) {
      if (!result.ok) return reply.code(result.status ?? 400).type(TEXT).send(`line ${line}: ${result.error}`)
      commands.push(result.command)
    }
    if (commands.length === 0) return reply.code(400).type(TEXT).send('no commands')
    const delivered = await hub.sendCommands(sid, commands)
    return delivered ? reply.code(202).send() : reply.code(404).type(TEXT).send('unknown session')
  }

  async function openStream(request: FastifyRequest, reply: FastifyReply, parsed: Parsed): Promise<unknown> {
    if (!parsed.ok) return reply.code(parsed.status ?? 400).type(TEXT).send(parsed.error)
    const ping = pingOptions(request)
    if (!ping.ok) return reply.code(400).type(TEXT).send(ping.error)
    const { commands, format, raw } = parsed.stream
    // Nothing is written before authentication and subscriptions are resolved: hold messages until then.
    const held: Outgoing[] = []
    const sink = new StreamSink(held, streams)

    // Only POST streams (fetch clients such as @rt/client) take commands; an EventSource GET never sends
    // any, so it costs no control-stream subscription and nothing in the session store.
    const commandable = options.remoteCommands && request.method === 'POST'
    const result = await hub.connect(request, sink, { mode: 'live', remoteCommands: commandable, resumable: commandable })
    if ('rejected' in result) {
      // An expired token says so (the client must get a new one); a plain refusal has an empty body, as AnyCable.
      if (result.rejected === 'token_expired') return reply.code(401).type(TEXT).send(`${JSON.stringify(disconnectMessage(result.rejected, false))}\n`)
      return reply.code(401).send()
    }
    const { session } = result
    const refuse = async (code: number, reason: string): Promise<unknown> => {
      await session.close()
      return reply.code(code).type(TEXT).send(reason)
    }
    for (const command of commands) {
      const outcome = await session.handle(command)
      if (!outcome.ok && outcome.error === BROKER_UNAVAILABLE) {
        // An outage, not a bad request: the client retries the same subscription later.
        await session.close()
        return replyUnavailable(reply)
      }
      if (!outcome.ok) return refuse(400, `${command.identifier}: ${outcome.error}`)
    }
    const rejected = held.find((outgoing) => messageType(outgoing.message) === 'reject_subscription')
    if (rejected !== undefined) return refuse(400, `subscription rejected: ${(rejected.message as { identifier: string }).identifier}`)
    if (streams.shuttingDown) return refuse(503, 'shutting down')
    reply.hijack()
    if (isClosed(reply.raw)) {
      await session.close()
      return reply
    }

    const settings = connectionSettings(format, raw, ping.ping.intervalMs ?? options.pingInterval, ping.ping.precision, options.maxBufferedBytes)
    sink.open(reply.raw, settings, session, reply.getHeaders(), request.raw.httpVersionMajor)
    return reply
  }
}

/**
 * Whether the client went away while the stream was being set up. Read from
 * the response rather than listened for: adding and removing a 'close'
 * listener turns the response's listener table into a slow dictionary
 * (~110 B per open connection).
 */
function isClosed(res: FastifyReply['raw']): boolean {
  // HTTP/1 sets `destroyed` on the response; HTTP/2's compatibility response has only its stream's.
  const stream = (res as { stream?: { destroyed: boolean } }).stream
  return res.destroyed || stream?.destroyed === true
}

/** Connection settings by what they are made of: every connection opened with the same options shares one frozen object. */
const sharedSettings = new Map<string, ConnectionSettings>()
/** Intervals come from clients (`?pi=`): the cache is emptied past this many, not grown. */
export const MAX_SHARED_SETTINGS = 64

/** The shared settings object of these options (an open connection holds a reference: ~80 B less each). */
export function connectionSettings(format: 'get' | 'post', raw: boolean, pingInterval: number, pingPrecision: PingPrecision, maxBufferedBytes: number): ConnectionSettings {
  const key = `${format} ${raw} ${pingInterval} ${pingPrecision} ${maxBufferedBytes}`
  let settings = sharedSettings.get(key)
  if (settings === undefined) {
    if (sharedSettings.size >= MAX_SHARED_SETTINGS) sharedSettings.clear()
    sharedSettings.set(key, (settings = Object.freeze({ format, raw, pingInterval, pingPrecision, maxBufferedBytes })))
  }
  return settings
}

/**
 * One event stream's side of its session: where the session's messages go
 * (held back until the stream is open, then to its connection), where the
 * connection finds its streams for the multi-stream cursor, and what is done
 * when it ends. One object per connection instead of a closure per callback
 * and the handler's scope they kept (Fastify's request and reply, the parsed
 * query, the held messages): ~1.3 KB less per idle connection.
 */
class StreamSink implements SessionSink, ConnectionOwner {
  private session: Session | undefined
  /** Where each stream's delivery began on this connection: only for a multi-stream GET cursor. */
  private starts: Map<string, StreamPosition> | undefined
  /** A GET's streams are fixed once it is open (it takes no commands): computed once, not per message. */
  private streamList: string[] | undefined

  constructor(
    /** What came before the stream opened (welcome, confirmations, history); `undefined` once it is written. */
    private held: Outgoing[] | undefined,
    private readonly registry: Streams
  ) {}

  /** Holds what comes before the stream opens; once it is open the session writes to the connection itself (`open`). */
  send(outgoing: Outgoing): void {
    this.held?.push(outgoing)
  }

  /** Opens the stream of a hijacked request: headers, then what was held, then the session's messages as they come. */
  open(
    res: FastifyReply['raw'],
    settings: ConnectionSettings,
    session: Session,
    headers: Record<string, number | string | string[] | undefined>,
    httpVersionMajor: number
  ): void {
    // Opened once, before anything cleared what was held.
    const held = this.held!
    this.session = session
    if (settings.format === 'get' && this.streams().length > 1) this.starts = startPositions(held)
    const connection = new SseConnection(res, settings, this)
    this.registry.open.add(connection)
    this.registry.gauge.inc()
    connection.open(headers, httpVersionMajor)
    for (const outgoing of held) connection.send(outgoing)
    this.held = undefined
    // From now on the session writes to the connection itself: one call fewer per message of a fan-out.
    session.redirect(connection)
    connection.startPings()
  }

  streams(): string[] {
    return (this.streamList ??= streamsOf(this.session!))
  }

  start(stream: string): StreamPosition | undefined {
    return this.starts?.get(stream) ?? this.session!.state.positions[stream]
  }

  ended(connection: SseConnection): void {
    this.registry.open.delete(connection)
    this.registry.gauge.dec()
    this.registry.track(this.session!.close())
  }
}

/** Every stream the session's subscriptions receive. */
function streamsOf(session: Session): string[] {
  const all = new Set<string>()
  for (const subscription of Object.values(session.state.subscriptions)) for (const stream of subscription.streams) all.add(stream)
  return [...all]
}

/**
 * Where each stream's delivery starts on a new connection: just before its
 * first held message (history backlog first, then live). Streams without held
 * messages start at the session's position, read when needed.
 */
function startPositions(held: readonly Outgoing[]): Map<string, StreamPosition> {
  const starts = new Map<string, StreamPosition>()
  for (const { message } of held) {
    const { stream_id: stream, epoch, offset } = message as { stream_id?: string; epoch?: string; offset?: number }
    if (stream === undefined || epoch === undefined || offset === undefined || offset <= 0 || starts.has(stream)) continue
    starts.set(stream, { offset: offset - 1, epoch })
  }
  return starts
}
