/**
 * Servers under test that run as their own process, outside the bench's
 * server process: golongpoll itself (a Go program the user builds from its
 * public source; its code is not ours to ship), and rt's category polling run
 * the same way so that both sides of that comparison pay for the same thing.
 *
 * The bench's server process starts the command with `PORT=<free port>`,
 * publishes to it over HTTP (golongpoll's `POST /publish {"category", "data"}`,
 * one request at a time, on a keep-alive connection), and reads the child's
 * CPU time and RSS from `/proc/<pid>` (Linux), so its own publishing is not
 * counted against the server.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BenchMessage, ServerTarget, TargetFactory, TargetOptions } from './target.js'

/** The command that starts golongpoll (see bench/README.md, "golongpoll itself"). */
export const GOLONGPOLL_COMMAND_ENV = 'BENCH_GOLONGPOLL_CMD'
/** Extra node flags for the standalone node servers (e.g. `--heap-prof`). */
export const RT_NODE_ARGS_ENV = 'BENCH_STANDALONE_NODE_ARGS'

const CLOCK_TICKS_PER_SECOND = 100
const PAGE_BYTES = 4096

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

async function waitForPort (port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const giveUp = Date.now() + timeoutMs
  while (Date.now() < giveUp) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`external server exited (${child.exitCode ?? child.signalCode})`)
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port })
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`external server not listening on ${port} within ${timeoutMs} ms`)
}

/** utime + stime of a process (all its threads), ms. */
function cpuMsOf (pid: number): number {
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND
}

function rssOf (pid: number): number {
  return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE_BYTES
}

/** Starts `argv` (or a shell command) on a free port and publishes to it over HTTP. */
async function external (options: TargetOptions, command: { file: string; args: string[] }, publishPath = '/publish'): Promise<ServerTarget> {
  const port = await freePort()
  const child = spawn(command.file, command.args, { env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit'] })
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${command.file}`)
  // The bench's server process exits with its orchestrator: the child goes with it.
  process.once('exit', () => child.kill('SIGKILL'))
  try {
    await waitForPort(port, child, 20_000)
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${PUBLISH_KEY}` }
  return {
    port,
    publish: (stream: number, message: BenchMessage) => new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({ category: `${options.streamPrefix}${stream}`, data: message })
      const request = http.request({ host: '127.0.0.1', port, method: 'POST', path: publishPath, headers, agent, timeout: 10_000 }, (response) => {
        response.resume()
        response.on('end', () => response.statusCode === 200 ? resolve() : reject(new Error(`publish answered ${response.statusCode}`)))
      })
      request.on('timeout', () => request.destroy(new Error('publish timed out')))
      request.on('error', reject)
      request.end(body)
    }),
    cpuMs: () => cpuMsOf(pid),
    rss: () => rssOf(pid),
    close: async () => {
      agent.destroy()
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
  }
}

/** The bearer key the external rt server's publish endpoint wants (golongpoll ignores the header). */
export const PUBLISH_KEY = 'bench-publish-key'

/** golongpoll: `$BENCH_GOLONGPOLL_CMD`, run by `sh -c 'exec …'` so the process measured is the server itself. */
export const golongpoll: TargetFactory = async (options) => {
  const command = process.env[GOLONGPOLL_COMMAND_ENV]
  if (command === undefined || command.trim() === '') throw new Error(`${GOLONGPOLL_COMMAND_ENV} is not set`)
  return external(options, { file: 'sh', args: ['-c', `exec ${command}`] })
}

/**
 * A server of `standalone.ts` in its own node process. When the bench's server
 * process is profiled, the child is profiled too (`<name>-server.cpuprofile`,
 * with the same measured window).
 */
async function standalone (name: string, options: TargetOptions): Promise<ServerTarget> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'standalone.js')
  const args = (process.env[RT_NODE_ARGS_ENV] ?? '').split(' ').filter((arg) => arg !== '')
  const mark = process.env.BENCH_PROFILE_MARK
  if (mark !== undefined) {
    const profile = basename(mark).replace(/\.mark\.json$/, '-server')
    args.push('--cpu-prof', `--cpu-prof-dir=${dirname(mark)}`, `--cpu-prof-name=${profile}.cpuprofile`)
  }
  const target = await external(options, { file: process.execPath, args: [...args, script, name, JSON.stringify(options)] })
  return { ...target, profileMark: mark === undefined ? undefined : mark.replace(/\.mark\.json$/, '-server.mark.json') }
}

/** rt's category polling in its own process, published to over HTTP like golongpoll. */
export const rtCategoryExternal: TargetFactory = (options) => standalone('rt-category', options)

/** The bare node:http category ceiling in its own process, published to over HTTP like golongpoll. */
export const ceilingCategoryExternal: TargetFactory = (options) => standalone('ceiling-category', options)
