import { spawn, type ChildProcess } from 'node:child_process'
import t from 'tap'
import { freePort } from './cluster.js'
import { emptyRestart } from './empty-restart.js'
import { uniquePrefix } from './helpers.js'

// A Redis server of the test's own (not the shared one), killed and started again with no data.
const port = await freePort()
let server: ChildProcess | undefined
/**
 * Starts the server and resolves once it accepts connections (its log says so): a spawned process is not
 * listening yet, and the brokers' first connection fails at once when it is refused.
 */
async function start(): Promise<void> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] })
  await new Promise<void>((resolve, reject) => {
    let log = ''
    const onData = (chunk: Buffer): void => {
      log += chunk.toString()
      if (!log.includes('Ready to accept connections')) return
      child.stdout!.off('data', onData)
      // Keeps reading the log so that the server never blocks on a full pipe.
      child.stdout!.resume()
      resolve()
    }
    child.stdout!.on('data', onData)
    child.once('error', reject)
    child.once('exit', (code, signal) => reject(new Error(`redis-server exited before it was ready (${code ?? signal})`)))
  })
  server = child
}
async function stop(): Promise<void> {
  const child = server
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}
t.teardown(stop)
await start()

t.test('a Redis server that restarts empty', async (t) => {
  await emptyRestart(t, { url: `redis://127.0.0.1:${port}` }, uniquePrefix('restart'), 'restarted', async () => {
    await stop()
    await start()
  })
})
