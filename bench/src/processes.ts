import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FromLoad, FromServer, LoadJob, LoadResult, PublishPlan, PublishReport, ServerStats, ToLoad, ToServer } from './protocol.js'
import type { TargetOptions } from './servers/target.js'

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))

/** Waits for the first IPC message of `type` from `child`, failing on an error message, on exit, or after `timeoutMs`. */
function expect<T extends { type: string }, K extends T['type']> (child: ChildProcess, type: K, timeoutMs: number, what: string): Promise<Extract<T, { type: K }>> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    const onMessage = (message: T): void => {
      if (message.type === type) {
        done()
        resolve(message as Extract<T, { type: K }>)
      } else if (message.type === 'error') {
        done()
        reject(new Error(`${what}: ${(message as unknown as { message: string }).message}`))
      }
    }
    const onExit = (code: number | null): void => {
      done()
      reject(new Error(`${what}: process exited (${code})`))
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`${what}: no ${type} within ${timeoutMs} ms`))
    }, timeoutMs)
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

/** One server under test in its own process. */
export class ServerProcess {
  private constructor (readonly name: string, readonly child: ChildProcess, readonly port: number) {}

  static async start (name: string, options: TargetOptions, profileDir?: string): Promise<ServerProcess> {
    const stamp = `${name}-${Date.now()}`
    // BENCH_SERVER_NODE_ARGS: extra node flags for server processes only (e.g. `--trace-gc`), split on spaces.
    const extra = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter((arg) => arg !== '') ?? []
    // --expose-gc: the idle RSS is read after a full collection (stats({ gc: true })), the same for every target.
    const execArgv = ['--expose-gc', ...extra, ...(profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${stamp}.cpuprofile`])]
    const env = profileDir === undefined ? process.env : { ...process.env, BENCH_PROFILE_MARK: join(profileDir, `${stamp}.mark.json`) }
    const child = fork(here('./server.js'), [name, JSON.stringify(options)], { execArgv, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const ready = await expect<FromServer, 'ready'>(child, 'ready', 30_000, name).catch((error: unknown) => {
      child.kill()
      throw error
    })
    return new ServerProcess(name, child, ready.port)
  }

  private ask<K extends FromServer['type']> (message: ToServer, reply: K, timeoutMs: number): Promise<Extract<FromServer, { type: K }>> {
    const answer = expect<FromServer, K>(this.child, reply, timeoutMs, this.name)
    this.child.send(message)
    return answer
  }

  /** Marks the start (or the end) of the measured window, where a profile summary counts. */
  mark (end = false): void {
    this.child.send({ type: 'mark', end } satisfies ToServer)
  }

  async stats (gc = false): Promise<ServerStats> {
    return (await this.ask({ type: 'stats', gc }, 'stats', 30_000)).stats
  }

  async publish (plan: PublishPlan): Promise<PublishReport> {
    const limit = plan.durationMs * 3 + 30_000
    try {
      return (await this.ask({ type: 'publish', plan }, 'published', limit)).report
    } catch (error) {
      throw new Error(`server did not finish ${plan.durationMs / 1000} s of publishing within ${limit / 1000} s (event loop saturated)`, { cause: error })
    }
  }

  async inproc (count: number, maxMs: number): Promise<{ sent: number; ms: number }> {
    const answer = await this.ask({ type: 'inproc', count, maxMs }, 'inproc', maxMs + 30_000)
    return { sent: answer.sent, ms: answer.ms }
  }

  /** Asks the server to close, killing it if it does not exit in 10 s (a profiled server writes its profile on exit). */
  async close (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    this.child.send({ type: 'close' } satisfies ToServer)
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
}

/** A load process; runs one job at a time. */
export class LoadProcess {
  readonly child: ChildProcess

  constructor () {
    this.child = fork(here('./load-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  }

  async start (job: LoadJob, timeoutMs: number): Promise<{ connected: number; failed: number; ms: number }> {
    const ready = expect<FromLoad, 'ready'>(this.child, 'ready', timeoutMs, 'load')
    this.child.send({ type: 'start', job } satisfies ToLoad)
    const answer = await ready
    return { connected: answer.connected, failed: answer.failed, ms: answer.ms }
  }

  drop (at: number): void {
    this.child.send({ type: 'drop', at } satisfies ToLoad)
  }

  async finish (published: number[], deadline: number, timeoutMs: number): Promise<LoadResult> {
    const result = expect<FromLoad, 'result'>(this.child, 'result', timeoutMs, 'load')
    this.child.send({ type: 'finish', published, deadline } satisfies ToLoad)
    return (await result).result
  }

  /** Closes the job's clients. */
  async stopClients (): Promise<void> {
    const stopped = expect<FromLoad, 'stopped'>(this.child, 'stopped', 30_000, 'load')
    this.child.send({ type: 'stop' } satisfies ToLoad)
    await stopped
  }

  /** Ends the process (it exits when its IPC channel closes). */
  stop (): void {
    this.child.disconnect()
  }
}
