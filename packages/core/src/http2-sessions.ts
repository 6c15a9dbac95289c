import type { EventEmitter } from 'node:events'
import type { Http2Session } from 'node:http2'
import type { FastifyInstance } from 'fastify'

/**
 * Makes an HTTP/2 app's close prompt. Browsers and HTTP/2 clients keep their session open with no stream
 * left, and Node's `server.close()` waits for every session to end, so without this `app.close()` waits out
 * Fastify's `http2SessionTimeout` (72 s by default) for each idle client. In `preClose` every session gets
 * GOAWAY (`session.close()`): no new stream is accepted, streams in flight finish (rt's transports end
 * theirs in their own `preClose`), then the session ends. Sessions of an HTTP/1 server: none, nothing to do.
 *
 * Fastify does the same only with `forceCloseConnections: true`, an option of the app, not of a plugin.
 */
export function closeHttp2SessionsOnClose(fastify: FastifyInstance): void {
  // Http2Server and Http2SecureServer emit 'session'; Fastify types `server` as the HTTP/1 one.
  const server = fastify.server as unknown as EventEmitter
  const sessions = new Set<Http2Session>()
  let closing = false
  const track = (session: Http2Session): void => {
    // A connection accepted between preClose and the listener's close: told at once.
    if (closing) {
      session.close()
      return
    }
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
  }
  server.on('session', track)
  fastify.addHook('preClose', (done) => {
    closing = true
    for (const session of sessions) session.close()
    done()
  })
  fastify.addHook('onClose', (_instance, done) => {
    server.off('session', track)
    done()
  })
}
