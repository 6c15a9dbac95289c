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
  // Http2Server and Http2SecureServer emit 'session'; Fastify types `server` as the HTTP/1 one.
  const server = fastify.server as unknown as EventEmitter
  /** Streams in flight per open session. */
  const inFlight = new Map<Http2Session, { streams: number }>()
  let closing = false
  // session.close() is a no-op on a session already closing or closed.
  const closeIfIdle = (session: Http2Session, state: { streams: number }): void => {
    if (closing && state.streams === 0) session.close()
  }
  const onSession = (session: Http2Session): void => {
    const state = { streams: 0 }
    inFlight.set(session, state)
    session.once('close', () => inFlight.delete(session))
    session.on('stream', (stream: ServerHttp2Stream) => {
      state.streams++
      stream.once('close', () => {
        state.streams--
        closeIfIdle(session, state)
      })
    })
    // A connection accepted between preClose and the listener's close: told at once.
    closeIfIdle(session, state)
  }
  server.on('session', onSession)
  fastify.addHook('preClose', (done) => {
    closing = true
    for (const [session, state] of inFlight) closeIfIdle(session, state)
    done()
  })
  fastify.addHook('onClose', (_instance, done) => {
    server.off('session', onSession)
    done()
  })
}
