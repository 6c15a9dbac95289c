import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'

/**
 * The environment variable that switches rt's transport suites to HTTP/2: `RT_TEST_HTTP2=1` runs the same
 * test files over HTTP/2 with TLS (a self-signed certificate made for the run), with no HTTP/1.1 fallback on
 * the server, so a request that is not HTTP/2 fails instead of passing quietly.
 */
export const HTTP2_TEST_ENV = 'RT_TEST_HTTP2'

/** Whether this test process runs over HTTP/2 (see {@link HTTP2_TEST_ENV}). */
export const http2UnderTest = (): boolean => process.env[HTTP2_TEST_ENV] === '1'

let certificate: { key: string; cert: string } | undefined

/**
 * A throw-away self-signed certificate for 127.0.0.1 and localhost (P-256, valid two days), made once per
 * process with the `openssl` CLI, which CI and Debian have (Node can make keys but not certificates). Clients
 * trust it by passing `cert` as their CA: nothing turns certificate checks off.
 */
export function testCertificate(): { key: string; cert: string } {
  if (certificate !== undefined) return certificate
  const dir = mkdtempSync(join(tmpdir(), 'rt-test-tls-'))
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
    ], { stdio: 'ignore' })
    certificate = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') }
    return certificate
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The HTTP an rt test app serves: HTTP/1.1, or HTTP/2 over TLS (h2 only). */
export type TestProtocol = 'http1' | 'http2'

/** The protocol of this run: `http2` when RT_TEST_HTTP2=1. */
export const protocolUnderTest = (): TestProtocol => http2UnderTest() ? 'http2' : 'http1'

/** Fastify's server options for `protocol`: none for HTTP/1.1; `http2` with TLS (h2 only, no HTTP/1.1 fallback) for HTTP/2. */
export function testServerOptions(protocol: TestProtocol = protocolUnderTest()): Pick<FastifyServerOptions, never> | { http2: true; https: { key: string; cert: string } } {
  return protocol === 'http2' ? { http2: true, https: testCertificate() } : {}
}

/**
 * `Fastify(options)` over the protocol under test (or the one given, for the HTTP/2 checks that also run in
 * the HTTP/1.1 run). Typed as the HTTP/1.1 instance that rt's plugins and tests use; over HTTP/2 the plugins
 * run on Fastify's compatibility API, as in an app.
 */
export function testFastify(options: FastifyServerOptions = {}, protocol: TestProtocol = protocolUnderTest()): FastifyInstance {
  return Fastify({ ...options, ...testServerOptions(protocol) } as FastifyServerOptions) as unknown as FastifyInstance
}

/**
 * Over HTTP/2, points the process's `fetch` (and every client built on it, such as the `eventsource` package)
 * at an undici Agent that negotiates h2 and trusts {@link testCertificate}; over HTTP/1.1, does nothing.
 * undici is an optional peer dependency, loaded only here. It also works around undici's HTTP/2 client
 * hanging on a zero-length request body (fetch hands it an empty stream, which it never ends): a request
 * that declares `Content-Length: 0` is sent with no body, which is the same request on the wire.
 */
export async function useProtocolForFetch(): Promise<void> {
  if (!http2UnderTest()) return
  const { Agent, setGlobalDispatcher } = await import('undici')
  const agent = new Agent({ allowH2: true, connect: { ca: testCertificate().cert } })
  setGlobalDispatcher(agent.compose((dispatch) => (options, handler) =>
    dispatch(declaredLength(options.headers) === '0' ? { ...options, body: null } : options, handler)))
}

/** The Content-Length a dispatched request declares (fetch passes its headers as an object or a flat array). */
export function declaredLength(headers: unknown): string | undefined {
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === 'content-length') return String(headers[i + 1])
    return undefined
  }
  if (typeof headers !== 'object' || headers === null) return undefined
  for (const [name, value] of Object.entries(headers)) if (name.toLowerCase() === 'content-length') return String(value)
  return undefined
}
