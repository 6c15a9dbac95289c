import http from 'node:http'
import { fastifySSE, type SSEReplyInterface } from '@fastify/sse'
import { createChannel, createSession, type Channel } from 'better-sse'
import express from 'express'
import longpoll from 'express-longpoll'
import Fastify from 'fastify'
import { Server as SocketIoServer } from 'socket.io'
import { closeServer, listen } from './ceilings.js'
import type { BenchMessage, TargetFactory } from './target.js'

function streamIndex (value: unknown, prefix: string): number {
  const text = typeof value === 'string' ? value : ''
  return Number(text.startsWith(prefix) ? text.slice(prefix.length) : text)
}

/**
 * better-sse 0.16 on Fastify 5: one channel per stream, `channel.broadcast`.
 * better-sse keeps no history, so the route replays from an array on
 * `Last-Event-ID` the way its docs suggest for resumption.
 */
export const betterSse: TargetFactory = async (options) => {
  const app = Fastify({ logger: false })
  const channels = new Map<number, Channel>()
  const history = new Map<number, BenchMessage[]>()
  const channel = (stream: number): Channel => {
    let found = channels.get(stream)
    if (found === undefined) {
      found = createChannel()
      channels.set(stream, found)
    }
    return found
  }
  app.get('/sse', async (request, reply) => {
    reply.hijack()
    const stream = streamIndex((request.query as { stream?: string }).stream, options.streamPrefix)
    const session = await createSession(request.raw, reply.raw)
    const last = Number(session.lastId === '' ? 0 : session.lastId)
    for (const message of (history.get(stream) ?? []).slice(last)) session.push(message, 'message', String(message.s))
    channel(stream).register(session)
  })
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 8192 })
  return {
    port: (app.server.address() as { port: number }).port,
    publish (stream: number, message: BenchMessage) {
      let list = history.get(stream)
      if (list === undefined) {
        list = []
        history.set(stream, list)
      }
      list.push(message)
      channel(stream).broadcast(message, 'message', { eventId: String(message.s) })
    },
    close: async () => {
      app.server.closeAllConnections()
      await app.close()
    }
  }
}

/**
 * @fastify/sse 0.6: `reply.sse.send` to every connection of a stream, kept in
 * a Set; resumption replays from an array after `reply.sse.lastEventId`.
 */
export const fastifySsePeer: TargetFactory = async (options) => {
  const app = Fastify({ logger: false })
  await app.register(fastifySSE)
  const connections = new Map<number, Set<SSEReplyInterface>>()
  const history = new Map<number, BenchMessage[]>()
  app.get('/sse', { sse: true }, async (request, reply) => {
    const stream = streamIndex((request.query as { stream?: string }).stream, options.streamPrefix)
    const sse = reply.sse
    sse.keepAlive()
    sse.sendHeaders()
    reply.raw.flushHeaders()
    const last = Number(sse.lastEventId ?? 0)
    let set = connections.get(stream)
    if (set === undefined) {
      set = new Set()
      connections.set(stream, set)
    }
    const own = set
    own.add(sse)
    sse.onClose(() => own.delete(sse))
    for (const message of (history.get(stream) ?? []).slice(last)) {
      sse.send({ id: String(message.s), data: message }).catch(() => own.delete(sse))
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 8192 })
  return {
    port: (app.server.address() as { port: number }).port,
    publish (stream: number, message: BenchMessage) {
      let list = history.get(stream)
      if (list === undefined) {
        list = []
        history.set(stream, list)
      }
      list.push(message)
      const set = connections.get(stream)
      if (set === undefined) return
      const event = { id: String(message.s), data: message }
      for (const sse of set) sse.send(event).catch(() => set.delete(sse))
    },
    close: async () => {
      app.server.closeAllConnections()
      await app.close()
    }
  }
}

/** socket.io 4 with `transports: ['polling']`: one room per stream, `io.to(room).emit`. */
export const socketIo: TargetFactory = async () => {
  const server = http.createServer()
  const io = new SocketIoServer(server, { transports: ['polling'], serveClient: false, pingInterval: 25000, pingTimeout: 20000 })
  io.on('connection', (socket) => {
    socket.on('join', (stream: number, ack: () => void) => {
      void socket.join(`s${stream}`)
      ack()
    })
  })
  const port = await listen(server)
  return {
    port,
    publish (stream: number, message: BenchMessage) {
      io.to(`s${stream}`).emit('m', message)
    },
    close: async () => {
      await io.close()
      await closeServer(server)
    }
  }
}

/** express-longpoll 1.0 on Express 5: one long-poll URL per category, `longpoll.publish(url, data)`. */
export const expressLongpoll: TargetFactory = async (options) => {
  const app = express()
  const polls = longpoll(app)
  for (let stream = 0; stream < options.streams; stream++) await polls.create(`/poll/${stream}`)
  const server = http.createServer(app)
  const port = await listen(server)
  return {
    port,
    publish (stream: number, message: BenchMessage) {
      // Fire and forget, as its README does (the returned Bluebird promise only says whether the URL exists).
      polls.publish(`/poll/${stream}`, message).catch(() => undefined)
    },
    close: () => closeServer(server)
  }
}

/**
 * Not a peer but a floor: the least a Fastify 5 app does for a publish (a
 * route, Fastify's JSON body parser, an array append, 201). rt ÷ this is the
 * cost of rt's own publish path on top of Fastify.
 */
export const fastifyPublish: TargetFactory = async () => {
  const app = Fastify({ logger: false })
  const log: Array<{ offset: number; data: unknown }> = []
  app.post('/_broadcast', async (request, reply) => {
    const body = request.body as { stream: string; data: string }
    log.push({ offset: log.length + 1, data: body.data })
    if (log.length > 1_000_000) log.length = 0
    return reply.code(201).send()
  })
  await app.listen({ host: '127.0.0.1', port: 0, backlog: 8192 })
  return {
    port: (app.server.address() as { port: number }).port,
    publish (_stream: number, message: BenchMessage) {
      log.push({ offset: log.length + 1, data: message })
    },
    close: async () => {
      app.server.closeAllConnections()
      await app.close()
    }
  }
}
