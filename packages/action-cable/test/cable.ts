/**
 * The real Action Cable 6.1 upstream of the tests (fixture/, Debian's
 * ruby-actioncable and puma): started on a free port below the ephemeral range,
 * stopped, killed and started again on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

const FIXTURE = fileURLToPath(new URL('./fixture/', import.meta.url))

export interface Cable {
  port: number
  /** `ws://127.0.0.1:PORT/cable` */
  url: string
  /** `http://127.0.0.1:PORT` (same host as the allowed origins). */
  origin: string
  /** `POST /broadcast {stream|room, data}`. */
  broadcast(body: Record<string, unknown>): Promise<void>
  /** `POST path body` on the upstream's HTTP side. */
  post(path: string, body?: Record<string, unknown>): Promise<unknown>
  stats(): Promise<{ connections: number; users: string[] }>
  /** SIGKILL: no close frame, TCP reset. */
  kill(): Promise<void>
  /** Starts puma again on the same port. */
  start(): Promise<void>
  stop(): Promise<void>
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

async function freePort(): Promise<number> {
  // Below 32768: Linux's ephemeral range can hold client sockets on any port above.
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (await portIsFree(port)) return port
  }
  throw new Error('no free port for the Action Cable fixture')
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()))
}

/** Starts the fixture; fails (never skips) when puma or Action Cable is missing. */
export async function startCable(env: Record<string, string> = {}): Promise<Cable> {
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  let log = ''

  const start = async (): Promise<void> => {
    const proc = spawn('puma', ['-b', `tcp://127.0.0.1:${port}`, '-t', '0:8', 'config.ru'], {
      cwd: FIXTURE,
      env: { ...process.env, LOG_LEVEL: 'warn', CABLE_ADAPTER: 'async', ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    child = proc
    log = ''
    proc.stdout!.on('data', (chunk: Buffer) => { log += String(chunk) })
    proc.stderr!.on('data', (chunk: Buffer) => { log += String(chunk) })
    const failed = new Promise<never>((_resolve, reject) => {
      proc.once('error', (error) => reject(new Error(`puma could not start (apt-get install ruby-actioncable puma): ${error.message}`)))
      proc.once('exit', (code) => reject(new Error(`puma exited (${code}) while starting:\n${log}`)))
    })
    failed.catch(() => undefined)
    const deadline = Date.now() + 30_000
    for (;;) {
      const ok = await Promise.race([failed, fetch(`${origin}/health`).then((r) => r.ok, () => false)])
      if (ok) return
      if (Date.now() > deadline) throw new Error(`puma was not ready within 30 s:\n${log}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  const post = async (path: string, body: Record<string, unknown> = {}): Promise<unknown> => {
    const response = await fetch(`${origin}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
    if (!response.ok) throw new Error(`POST ${path}: ${response.status}`)
    return response.json()
  }

  await start()
  return {
    port,
    url: `ws://127.0.0.1:${port}/cable`,
    origin,
    post,
    broadcast: async (body) => { await post('/broadcast', body) },
    stats: async () => (await (await fetch(`${origin}/stats`)).json()) as { connections: number; users: string[] },
    kill: async () => {
      const proc = child!
      proc.kill('SIGKILL')
      await exited(proc)
    },
    start,
    stop: async () => {
      const proc = child
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited(proc)
      clearTimeout(timer)
    }
  }
}
