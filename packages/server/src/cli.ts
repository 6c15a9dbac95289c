import { readFileSync } from 'node:fs'
import { ConfigError, resolveConfig } from './config.js'
import { helpText } from './help.js'
import { startServer, type RtServer } from './server.js'

/** Where the command line writes. */
export interface CliOutput {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
}

/** What {@link runCli} ended with: an exit status (help, version, bad configuration), or the running server. */
export type CliResult = { exitCode: number } | { server: RtServer }

/** The version of this package, for `--version`. */
export function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return manifest.version
}

/**
 * `rt-server`: reads the command line and environment, then starts the server
 * with {@link startServer} (the same function programs call). A bad flag or
 * value is written to stderr as `rt-server: <message naming the flag>` and
 * ends with exit status 1, as anycable-go does.
 */
export async function runCli(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, output: CliOutput): Promise<CliResult> {
  try {
    const result = resolveConfig({ argv, env })
    if (result.action === 'help') {
      output.stdout.write(helpText())
      return { exitCode: 0 }
    }
    if (result.action === 'version') {
      output.stdout.write(`${version()}\n`)
      return { exitCode: 0 }
    }
    return { server: await startServer(result.config) }
  } catch (error) {
    const message = error instanceof ConfigError ? error.message : `cannot start: ${(error as Error).message}`
    output.stderr.write(`rt-server: ${message}\n`)
    return { exitCode: 1 }
  }
}

/**
 * Stops `server` on SIGTERM or SIGINT (emitted by `signals`, the process by
 * default) within `--shutdown_timeout`, then calls `onStopped` with the exit
 * status: 0, or 1 when connections had to be cut. Returns a function that
 * removes the handlers.
 */
export function stopOnSignals(
  server: RtServer,
  onStopped: (exitCode: number) => void,
  signals: Pick<NodeJS.EventEmitter, 'once' | 'off'> = process
): () => void {
  const handler = (signal: NodeJS.Signals): void => {
    server.app.log.info(`${signal}: shutting down (timeout ${server.config.shutdown_timeout} s)`)
    void server.stop().then(({ forced }) => {
      server.app.log.info(forced ? 'stopped, connections cut at the timeout' : 'stopped')
      onStopped(forced ? 1 : 0)
    })
  }
  signals.once('SIGTERM', handler)
  signals.once('SIGINT', handler)
  return () => {
    signals.off('SIGTERM', handler)
    signals.off('SIGINT', handler)
  }
}
