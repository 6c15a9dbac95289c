/**
 * Entry of a load process (forked by the orchestrator). It runs one job at a
 * time and exits when its parent goes away or after an hour at most.
 */
import { LoadRun } from './load.js'
import type { FromLoad, ToLoad } from './protocol.js'

let run: LoadRun | undefined

function send (message: FromLoad): void {
  process.send?.(message)
}

process.on('message', (message: ToLoad) => {
  void handle(message).catch((error: unknown) => send({ type: 'error', message: String(error) }))
})

async function handle (message: ToLoad): Promise<void> {
  if (message.type === 'start') {
    run = new LoadRun(message.job)
    const opened = await run.open()
    send({ type: 'ready', ...opened })
  } else if (message.type === 'drop') {
    run?.drop(message.at)
  } else if (message.type === 'finish' && run !== undefined) {
    send({ type: 'result', result: await run.finish(message.published, message.deadline) })
  } else if (message.type === 'stop') {
    run?.stop()
    run = undefined
    send({ type: 'stopped' })
  }
}

process.on('disconnect', () => process.exit(0))
setTimeout(() => process.exit(2), 3_600_000).unref()
