#!/usr/bin/env node
import { runCli, stopOnSignals } from './cli.js'

const result = await runCli(process.argv.slice(2), process.env, process)
if ('exitCode' in result) {
  process.exitCode = result.exitCode
} else {
  stopOnSignals(result.server, (exitCode) => {
    process.exitCode = exitCode
    // Unref'd: fires only if a handle outlived stop() (a bug: bin.test.ts checks it never happens), which would
    // otherwise keep the process alive.
    /* c8 ignore next 4 */
    setTimeout(() => {
      process.stderr.write(`rt-server: still running after stop: ${process.getActiveResourcesInfo().join(', ')}\n`)
      process.exit(exitCode === 0 ? 70 : exitCode)
    }, 2000).unref()
  })
}
