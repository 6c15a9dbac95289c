import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { now } from '../tracker.js'
import type { BenchMessage, ServerTarget, TargetFactory, TargetOptions } from './target.js'

/** Listens on 127.0.0.1, an ephemeral port, with a backlog for connection storms. */
export function listen (server: http.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port, backlog: 8192 }, () => resolve((server.address() as AddressInfo).port))
  })
}

export function closeServer (server: http.Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

function streamOf (url: string | undefined, name: string, prefix: string): number {
  const value = new URL(url ?? '/', 'http://x').searchParams.get(name) ?? ''
  return Number(value.startsWith(prefix) ? value.slice(prefix.length) : value)
}

function grow<T> (list: T[][], index: number): T[] {
  let entry = list[index]
  if (entry === undefined) {
    entry = []
    list[index] = entry
  }
  return entry
}

/**
 * SSE ceiling: bare node:http; each message is encoded once into one Buffer
 * and written to every socket. Keeps every frame so `Last-Event-ID` resumes.
 */
export const ceilingSse: TargetFactory = async (options) => {
  const subscribers: Array<Set<http.ServerResponse>> = []
  const frames: Buffer[][] = []
  const server = http.createServer((request, response) => {
    const stream = streamOf(request.url, 'stream', options.streamPrefix)
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    response.write(':ok\n\n')
    const last = Number(request.headers['last-event-id'] ?? 0)
    const history = grow(frames, stream)
    for (let i = last; i < history.length; i++) response.write(history[i] as Buffer)
    let set = subscribers[stream]
    if (set === undefined) {
      set = new Set()
      subscribers[stream] = set
    }
    set.add(response)
    response.on('close', () => set.delete(response))
  })
  const port = await listen(server)
  return {
    port,
    publish (stream: number, message: BenchMessage) {
      const frame = Buffer.from(`id: ${message.s}\ndata: ${JSON.stringify(message)}\n\n`)
      grow(frames, stream).push(frame)
      const set = subscribers[stream]
      if (set !== undefined) for (const response of set) response.write(frame)
    },
    close: () => closeServer(server)
  }
}

interface Waiter { response: http.ServerResponse; after: number; timer: ReturnType<typeof setTimeout> }

/** A JSON answer with its length: the least a poll answer can cost. */
function answer(response: http.ServerResponse, body: string, headers: http.OutgoingHttpHeaders = JSON_ONLY): void {
  response.writeHead(200, { ...headers, 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

const JSON_ONLY: http.OutgoingHttpHeaders = { 'content-type': 'application/json' }

/**
 * The headers golongpoll's subscribe handler sends on every answer (and rt
 * with it): what a proxy between a client and the server needs to see.
 */
export const GOLONGPOLL_HEADERS: http.OutgoingHttpHeaders = {
  'content-type': 'application/json',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache, no-store, must-revalidate',
  pragma: 'no-cache',
  expires: '0'
}

/** Answers every waiter of a stream with what it has not seen; waiters at the same cursor share one encoded body. */
function answerWaiters(list: Waiter[], history: string[], wrap: (events: string) => string, headers?: http.OutgoingHttpHeaders): void {
  const bodies = new Map<number, string>()
  for (const waiter of list) {
    clearTimeout(waiter.timer)
    let body = bodies.get(waiter.after)
    if (body === undefined) {
      body = wrap(history.slice(waiter.after).join(','))
      bodies.set(waiter.after, body)
    }
    answer(waiter.response, body, headers)
  }
}

/**
 * Long-poll ceiling: `GET /lp?stream=K&after=N` answers the JSON array of
 * messages after N from an in-memory array, or holds until the next publish.
 */
export const ceilingLongPoll: TargetFactory = async (options) => {
  const encoded: string[][] = []
  const waiting: Waiter[][] = []
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://x')
    if (url.pathname !== '/lp') {
      response.writeHead(404).end()
      return
    }
    const stream = streamOf(request.url, 'stream', options.streamPrefix)
    const after = Number(url.searchParams.get('after') ?? 0)
    const history = grow(encoded, stream)
    if (history.length > after) {
      answer(response, `[${history.slice(after).join(',')}]`)
      return
    }
    const waiter: Waiter = {
      response,
      after,
      timer: setTimeout(() => {
        const list = grow(waiting, stream)
        const at = list.indexOf(waiter)
        if (at >= 0) list.splice(at, 1)
        answer(response, '[]')
      }, options.holdSeconds * 1000)
    }
    grow(waiting, stream).push(waiter)
  })
  const port = await listen(server)
  return {
    port,
    publish (stream: number, message: BenchMessage) {
      const history = grow(encoded, stream)
      history.push(JSON.stringify(message))
      const list = waiting[stream]
      if (list === undefined || list.length === 0) return
      waiting[stream] = []
      answerWaiters(list, history, (events) => `[${events}]`)
    },
    close: () => closeServer(server)
  }
}

/**
 * Category-poll ceiling: golongpoll's `GET /events?category=&timeout=&since_time=&last_id=`
 * answered from an array per category (the id is the position in it).
 */
export const ceilingCategory: TargetFactory = async (options) => categoryCeiling(options, JSON_ONLY)

/** The same ceiling sending golongpoll's five subscribe headers on every answer, as the protocol has them. */
export const ceilingCategoryHeaders: TargetFactory = async (options) => categoryCeiling(options, GOLONGPOLL_HEADERS)

async function categoryCeiling (options: TargetOptions, headers: http.OutgoingHttpHeaders): Promise<ServerTarget> {
  const events: string[][] = []
  const waiting: Waiter[][] = []
  const publish = (stream: number, message: unknown): void => {
    const history = grow(events, stream)
    history.push(JSON.stringify({ timestamp: Date.now(), category: `${options.streamPrefix}${stream}`, data: message, id: String(history.length + 1) }))
    const list = waiting[stream]
    if (list === undefined || list.length === 0) return
    waiting[stream] = []
    answerWaiters(list, history, (events) => `{"events":[${events}]}`, headers)
  }
  const server = http.createServer((request, response) => {
    if (request.method === 'POST') {
      // golongpoll's publish (`{"category", "data"}`), for the comparison with golongpoll run over HTTP.
      let text = ''
      request.setEncoding('utf8')
      request.on('data', (chunk: string) => { text += chunk })
      request.on('end', () => {
        const body = JSON.parse(text) as { category: string; data: unknown }
        publish(Number(body.category.slice(options.streamPrefix.length)), body.data)
        answer(response, '{"success": true}')
      })
      return
    }
    const url = new URL(request.url ?? '/', 'http://x')
    const stream = streamOf(request.url, 'category', options.streamPrefix)
    const after = Number(url.searchParams.get('last_id') ?? 0)
    const history = grow(events, stream)
    if (history.length > after) {
      answer(response, `{"events":[${history.slice(after).join(',')}]}`, headers)
      return
    }
    const waiter: Waiter = {
      response,
      after,
      timer: setTimeout(() => {
        const list = grow(waiting, stream)
        const at = list.indexOf(waiter)
        if (at >= 0) list.splice(at, 1)
        answer(response, `{"timeout":"no events before timeout","timestamp":${Date.now()}}`, headers)
      }, options.holdSeconds * 1000)
    }
    grow(waiting, stream).push(waiter)
  })
  const port = await listen(server, options.port)
  return {
    port,
    publish,
    close: () => closeServer(server)
  }
}

/**
 * Publish ceiling: `POST /_broadcast` parses the JSON body and appends it to an
 * array; in process, a publish is an array append with an offset.
 */
export const ceilingPublish: TargetFactory = async (options: TargetOptions) => {
  const log: Array<{ offset: number; data: unknown }> = []
  const server = http.createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => { body += chunk })
    request.on('end', () => {
      try {
        const parsed = JSON.parse(body) as { stream: string; data: string }
        log.push({ offset: log.length + 1, data: parsed.data })
        response.writeHead(201).end()
      } catch {
        response.writeHead(400).end()
      }
      if (log.length > 1_000_000) log.length = 0
    })
  })
  const port = await listen(server)
  return {
    port,
    publish (_stream: number, message: BenchMessage) {
      log.push({ offset: log.length + 1, data: message })
    },
    async inproc (count: number, maxMs: number) {
      const started = now()
      // A ring of the last `historyLimit` messages: retention like rt's history, memory bounded.
      const own: Array<{ offset: number; data: unknown }> = new Array(options.historyLimit)
      let sent = 0
      while (sent < count && (sent % 1024 !== 0 || now() - started < maxMs)) {
        own[sent % options.historyLimit] = { offset: sent + 1, data: { s: sent } }
        sent++
      }
      return { sent, ms: now() - started }
    },
    close: () => closeServer(server)
  } satisfies ServerTarget
}
