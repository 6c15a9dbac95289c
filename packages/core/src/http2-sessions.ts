import type { EventEmitter } from 'node:events'
import type { Http2Session, ServerHttp2Stream } from 'node:http2'
import type { FastifyInstance } from 'fastify'

/**
 * Makes an HTTP/2 app's close prompt. Browsers and HTTP/2 clients keep their session open with no stream
 * left, and Node's `server.close()` waits for every session to end, so without this `app.close()` waits out
 * Fastify's `http2SessionTimeout` (72 s by default) for each idle client.
 *
 * From `preClose` on, every session is closed (`session.close()`: GOAWAY, then the session ends) as soon as
 * it has no stream in flight: idle ones at once, the others when their last stream ends (rt's transports
 * answer held polls and end event streams in their own `preClose`). GOAWAY waits for the streams because
 * some clients (undici's fetch among them) fail every request still in flight on the session when it
 * arrives, although HTTP/2 lets those finish. An HTTP/1 server has no sessions: nothing to do.
 *
 * Fastify does something close only with `forceCloseConnections: true`, an option of the app, not of a plugin.
 */
export function closeHttp2SessionsOnClose(fastify: FastifyInstance): void {
  // Http2Server and Http2SecureServer emit 'session' and 'stream'; Fastify types `server` as the HTTP/1 one.
  const server = fastify.server as unknown as EventEmitter
  /** Streams in flight per open session. */
  const inFlight = new Map<Http2Session, number>()
  let closing = false
  const closeIfIdle = (session: Http2Session): void => {
    if (closing && inFlight.get(session) === 0 && !session.closed) session.close()
  }
  const onSession = (session: Http2Session): void => {
    inFlight.set(session, 0)
    session.once('close', () => inFlight.delete(session))
    // A connection accepted between preClose and the listener's close: told at once.
    closeIfIdle(session)
  }
  const onStream = (stream: ServerHttp2Stream): void => {
    const session = stream.session
    if (session === undefined || !inFlight.has(session)) return
    inFlight.set(session, inFlight.get(session)! + 1)
    stream.once('close', () => {
      const left = inFlight.get(session)
      if (left === undefined) return
      inFlight.set(session, left - 1)
      closeIfIdle(session)
    })
  }
  server.on('session', onSession)
  server.on('stream', onStream)
  fastify.addHook('preClose', (done) => {
    closing = true
    for (const session of inFlight.keys()) closeIfIdle(session)
    done()
  })
  fastify.addHook('onClose', (_instance, done) => {
    server.off('session', onSession)
    server.off('stream', onStream)
    done()
  })
}
