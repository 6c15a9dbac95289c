import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import type { Row } from './measure.js'
import { ServerProcess } from './processes.js'
import type { TargetOptions } from './servers/target.js'

const require = createRequire(import.meta.url)

export interface CannonSpec {
  target: string
  label: string
  method: 'GET' | 'POST'
  path: string
  headers?: Record<string, string>
  body?: string
  connections: number
  seconds: number
  /** Messages the server publishes before the run (so polls have something to answer at once). */
  seed?: number
}

interface CannonJson {
  requests: { average: number; total: number }
  latency: { p50: number; p99: number; max: number }
  errors: number
  timeouts: number
  non2xx: number
  duration: number
}

/** autocannon in its own process, `-p 1` (no pipelining: browsers never pipeline), JSON out. */
function autocannon (url: string, spec: CannonSpec): Promise<CannonJson> {
  const args = [require.resolve('autocannon/autocannon.js'), '-c', String(spec.connections), '-p', '1', '-d', String(spec.seconds), '-m', spec.method, '--json']
  for (const [name, value] of Object.entries(spec.headers ?? {})) args.push('-H', `${name}=${value}`)
  if (spec.body !== undefined) args.push('-b', spec.body)
  args.push(url)
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { timeout: (spec.seconds + 30) * 1000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => {
      if (error !== null) {
        reject(error)
        return
      }
      try {
        resolve(JSON.parse(stdout) as CannonJson)
      } catch (parseError) {
        reject(parseError instanceof Error ? parseError : new Error(String(parseError)))
      }
    })
  })
}

export async function cannon (spec: CannonSpec, options: TargetOptions, profileDir?: string): Promise<Row> {
  let server: ServerProcess | undefined
  try {
    server = await ServerProcess.start(spec.target, options, profileDir)
    // `seed` messages at 100k/s: durationMs = seed / 100.
    if (spec.seed !== undefined) await server.publish({ rate: 100_000, durationMs: spec.seed / 100, streams: 1 })
    const before = await server.stats()
    server.mark()
    const result = await autocannon(`http://127.0.0.1:${server.port}${spec.path}`, spec)
    const after = await server.stats()
    server.mark(true)
    const cpuMs = after.cpuMs - before.cpuMs
    const failures = result.errors + result.timeouts + result.non2xx
    return {
      target: spec.target,
      label: spec.label,
      status: failures === 0 ? 'ok' : `FAIL: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`,
      requestsPerSec: result.requests.total / (result.duration || spec.seconds),
      p50: result.latency.p50,
      p99: result.latency.p99,
      maxLatency: result.latency.max,
      cpuPercent: (cpuMs / (after.at - before.at)) * 100,
      perCpuSecond: cpuMs > 0 ? result.requests.total / (cpuMs / 1000) : Number.NaN,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts
    }
  } catch (error) {
    return { target: spec.target, label: spec.label, status: `FAIL: ${error instanceof Error ? error.message : String(error)}` }
  } finally {
    await server?.close()
  }
}

/** In-process publish throughput: `count` awaited publishes in the server process. */
export async function inproc (target: string, label: string, count: number, maxMs: number, options: TargetOptions, profileDir?: string): Promise<Row> {
  let server: ServerProcess | undefined
  try {
    server = await ServerProcess.start(target, options, profileDir)
    const before = await server.stats()
    server.mark()
    const result = await server.inproc(count, maxMs)
    const after = await server.stats()
    server.mark(true)
    return {
      target,
      label,
      status: 'ok',
      requestsPerSec: result.sent / (result.ms / 1000),
      rssLoadKbPerConn: Number.NaN,
      cpuPercent: ((after.cpuMs - before.cpuMs) / (after.at - before.at)) * 100,
      perCpuSecond: result.sent / ((after.cpuMs - before.cpuMs) / 1000)
    }
  } catch (error) {
    return { target, label, status: `FAIL: ${error instanceof Error ? error.message : String(error)}` }
  } finally {
    await server?.close()
  }
}
