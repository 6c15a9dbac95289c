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
  type StreamPosition,
  type SubscribeCommand
} from '@rt/core'
import { SseConnection, type ConnectionOptions } from './connection.js'
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
    const sink = new StreamSink(held)
    let gone = false
    const onGone = (): void => { gone = true }
    reply.raw.once('close', onGone)

    // Only POST streams (fetch clients such as @rt/client) take commands; an EventSource GET never sends
    // any, so it costs no control-stream subscription and nothing in the session store.
    const commandable = options.remoteCommands && request.method === 'POST'
    const result = await hub.connect(request, sink, { mode: 'live', remoteCommands: commandable, resumable: commandable })
    if ('rejected' in result) {
      reply.raw.off('close', onGone)
      // An expired token says so (the client must get a new one); a plain refusal has an empty body, as AnyCable.
      if (result.rejected === 'token_expired') return reply.code(401).type(TEXT).send(`${JSON.stringify(disconnectMessage(result.rejected, false))}\n`)
      return reply.code(401).send()
    }
    const { session } = result
    const release = async (): Promise<void> => {
      reply.raw.off('close', onGone)
      await session.close()
    }
    const refuse = async (code: number, reason: string): Promise<unknown> => {
      await release()
      return reply.code(code).type(TEXT).send(reason)
    }
    for (const command of commands) {
      const outcome = await session.handle(command)
      if (!outcome.ok && outcome.error === BROKER_UNAVAILABLE) {
        // An outage, not a bad request: the client retries the same subscription later.
        await release()
        return replyUnavailable(reply)
      }
      if (!outcome.ok) return refuse(400, `${command.identifier}: ${outcome.error}`)
    }
    const rejected = held.find((outgoing) => messageType(outgoing.message) === 'reject_subscription')
    if (rejected !== undefined) return refuse(400, `subscription rejected: ${(rejected.message as { identifier: string }).identifier}`)
    if (streams.shuttingDown) return refuse(503, 'shutting down')
    reply.raw.off('close', onGone)
    reply.hijack()
    if (gone) {
      await session.close()
      return reply
    }

    serveStream(reply.raw, session, sink, held, streams, {
      format,
      raw,
      pingInterval: ping.ping.intervalMs ?? options.pingInterval,
      pingPrecision: ping.ping.precision,
      maxBufferedBytes: options.maxBufferedBytes,
      headers: reply.getHeaders(),
      httpVersionMajor: request.raw.httpVersionMajor
    })
    return reply
  }
}

/** Where a session's messages go: held back until its stream is open, then to its connection. */
class StreamSink {
  connection: SseConnection | undefined

  constructor(
    /** What came before the stream opened (welcome, confirmations, history); `undefined` once it is written. */
    public held: Outgoing[] | undefined
  ) {}

  send(outgoing: Outgoing): void {
    if (this.connection === undefined) this.held?.push(outgoing)
    else this.connection.send(outgoing)
  }
}

/**
 * Opens the event stream of a hijacked request and keeps it. Its own function
 * so that an open stream keeps only what it uses: the request handler's scope
 * (Fastify's request and reply, the parsed query, the held messages) is
 * garbage once the stream is open — about 1 KB per idle connection.
 */
function serveStream(
  res: FastifyReply['raw'],
  session: Session,
  sink: StreamSink,
  held: readonly Outgoing[],
  streams: Streams,
  settings: Omit<ConnectionOptions, 'cursor' | 'onEnd' | 'pingPrecision'> & {
    pingPrecision: PingPrecision
    headers: Record<string, number | string | string[] | undefined>
    httpVersionMajor: number
  }
): void {
  // Where each stream started matters only for a multi-stream cursor: a single-stream GET keeps no map of it.
  let connectionStreams: string[] | undefined
  const streamList = (): string[] => (connectionStreams ??= streamsOf(session))
  const starts = settings.format === 'get' && streamList().length > 1 ? startPositions(held) : undefined
  const opened = new SseConnection(res, {
    format: settings.format,
    raw: settings.raw,
    pingInterval: settings.pingInterval,
    pingPrecision: settings.pingPrecision,
    maxBufferedBytes: settings.maxBufferedBytes,
    cursor: {
      // A GET's streams are fixed once it is open (it takes no commands): computed once, not per message.
      streams: streamList,
      start: (stream) => starts?.get(stream) ?? session.state.positions[stream]
    },
    onEnd: () => {
      streams.open.delete(opened)
      streams.gauge.dec()
      streams.track(session.close())
    }
  })
  streams.open.add(opened)
  streams.gauge.inc()
  opened.open(settings.headers, settings.httpVersionMajor)
  for (const outgoing of held) opened.send(outgoing)
  sink.held = undefined
  sink.connection = opened
  opened.startPings()
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
