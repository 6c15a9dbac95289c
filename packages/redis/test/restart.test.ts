import { spawn, type ChildProcess } from 'node:child_process'
import t from 'tap'
import { freePort } from './cluster.js'
import { emptyRestart } from './empty-restart.js'
import { uniquePrefix } from './helpers.js'

// A Redis server of the test's own (not the shared one), killed and started again with no data.
const port = await freePort()
let server: ChildProcess | undefined
async function start(): Promise<void> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
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
