import { spawn, type ChildProcess } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { EventSource } from 'eventsource'

/** The built bin (the tests run after `tsc -b`, as `pnpm test` does). */
export const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url))

/** Waits until `condition()` holds, checking on every event-loop turn; fails with `what` after `ms`. */
export async function waitFor(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * A stream name signed the way Rails' `Turbo::StreamsChannel` signs it:
 * `ActiveSupport::MessageVerifier.new(key, digest: "SHA256", serializer: JSON).generate(name)`,
 * i.e. strict base64 of the JSON text, `--`, hex HMAC-SHA256 of that base64 text. Written here from
 * Rails' definition rather than with @rt/core's `signStream`, so the test checks core against Rails.
 */
export function railsSignedStreamName(name: string, key: string): string {
  const data = Buffer.from(JSON.stringify(name), 'utf8').toString('base64')
  return `${data}--${createHmac('sha256', key).update(data).digest('hex')}`
}

/** What an EventSource received: data events (`messages`), the types of protocol events, the disconnect's data. */
export interface EventSourceLog {
  source: EventSource
  messages: MessageEvent[]
  /** The `data` of every message event. */
  data: string[]
  types: string[]
  disconnect: string | undefined
}

/**
 * Opens an EventSource (the browser's SSE client) and waits for its subscription to be confirmed. It closes
 * itself on `disconnect`, so it never reconnects to a stopped server, and at `teardown`.
 */
export async function openEventSource(url: string, teardown: (fn: () => unknown) => void): Promise<EventSourceLog> {
  const source = new EventSource(url)
  teardown(() => source.close())
  const log: EventSourceLog = { source, messages: [], data: [], types: [], disconnect: undefined }
  source.onmessage = (event) => {
    log.messages.push(event)
    log.data.push(event.data as string)
  }
  for (const type of ['welcome', 'confirm_subscription', 'disconnect']) {
    source.addEventListener(type, (event) => {
      log.types.push(type)
      if (type !== 'disconnect') return
      log.disconnect = event.data as string
      source.close()
    })
  }
  await waitFor(() => log.types.includes('confirm_subscription'), `the subscription of ${url}`)
  return log
}

/** Sockets and servers alive in this process (`process.getActiveResourcesInfo()`), to find leaks. */
export function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap' || name === 'TCPServerWrap').length
}

/** A running `rt-server` child process and everything it printed. */
export class BinProcess {
  readonly stdout: string[] = []
  stderr = ''
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
  private partial = ''

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8')
    child.stderr!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      const lines = (this.partial + chunk).split('\n')
      this.partial = lines.pop()!
      this.stdout.push(...lines)
    })
    child.stderr!.on('data', (chunk: string) => { this.stderr += chunk })
    child.once('exit', (code, signal) => { this.exit = { code, signal } })
  }

  /** The `msg` of every JSON log line. */
  get messages(): string[] {
    return this.stdout.flatMap((line) => {
      try {
        return [String((JSON.parse(line) as { msg: unknown }).msg)]
      } catch {
        return []
      }
    })
  }

  /** The base URL, once the server logged it. */
  async url(): Promise<string> {
    let url: string | undefined
    await waitFor(() => {
      url = this.messages.map((msg) => /^rt-server listening at (\S+)$/.exec(msg)?.[1]).find(Boolean)
      if (url === undefined && this.exit !== undefined) throw new Error(`rt-server exited (${JSON.stringify(this.exit)}): ${this.stderr}`)
      return url !== undefined
    }, 'rt-server to listen')
    return url!
  }

  async exited(ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    await waitFor(() => this.exit !== undefined, 'rt-server to exit', ms)
    return this.exit!
  }

  /** SIGTERM, then the exit status. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exit === undefined) this.child.kill('SIGTERM')
    return this.exited()
  }
}

/**
 * Starts `rt-server` with `args` and `env` (added to a clean environment:
 * PATH only, so no ANYCABLE_ variable of the test runner leaks in).
 */
export function startBin(args: string[], env: Record<string, string> = {}, teardown?: (fn: () => unknown) => void): BinProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const bin = new BinProcess(child)
  teardown?.(() => bin.stop())
  return bin
}
