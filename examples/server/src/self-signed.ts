import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Makes a throw-away self-signed certificate for 127.0.0.1 and localhost with the `openssl` CLI (for tests and
 * local HTTP/2 trials; browsers warn about it). Returns the PEM files' paths, for TLS_KEY and TLS_CERT.
 */
export function selfSignedCertificate(dir = mkdtempSync(join(tmpdir(), 'rt-tls-'))): { key: string; cert: string } {
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', cert
  ], { stdio: 'ignore' })
  return { key, cert }
}
