/**
 * `pnpm bench [--quick] [--only s1,s3,s4-golongpoll] [--targets rt-sse,ceiling-sse] [--profile rt-sse,rt-lp]`: runs the
 * scenarios of issue 10 and writes bench/results/latest.{md,json} (a
 * `--quick` smoke run writes quick.{md,json}; `--only` or `--profile`,
 * partial.{md,json}). Every server and load generator
 * is its own process on 127.0.0.1; every wait is bounded.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { cannon, inproc } from './cannon.js'
import { createPool, deliver, type Row } from './measure.js'
import { summarizeProfiles } from './profile.js'
import { flags, markdown, type GroupResult, type Results, type ScenarioResult } from './report.js'
import { scenarios, type Group } from './scenarios.js'
import { GOLONGPOLL_COMMAND_ENV } from './servers/external.js'
import type { TargetOptions } from './servers/target.js'

const { values } = parseArgs({
  // pnpm may pass a lone `--` through; it carries no meaning here.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'string' },
    targets: { type: 'string' }
  }
})
const quick = values.quick === true
const only = values.only?.split(',').filter((id) => id !== '')
// Only these targets' rows (e.g. `--targets rt-sse,ceiling-sse`): a focused comparison that loads the machine less.
const targets = values.targets?.split(',').filter((name) => name !== '')
const wanted = (target: string): boolean => targets === undefined || targets.includes(target)
const profiled = new Set(values.profile?.split(',').filter((name) => name !== '') ?? [])
const resultsDir = fileURLToPath(new URL('../results/', import.meta.url))
const profileDir = `${resultsDir}profiles`

function redisReachable (): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: 6379 })
    const timer = setTimeout(() => { socket.destroy(); resolve(false) }, 1000)
    socket.once('connect', () => { clearTimeout(timer); socket.end(); resolve(true) })
    socket.once('error', () => { clearTimeout(timer); resolve(false) })
  })
}

/** Why a target cannot run here (no Redis for the Redis broker), or undefined. */
async function unavailable (): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  if (!(await redisReachable())) out.set('rt-publish-redis', 'no Redis at 127.0.0.1:6379')
  if ((process.env[GOLONGPOLL_COMMAND_ENV] ?? '').trim() === '') {
    const why = `${GOLONGPOLL_COMMAND_ENV} is not set (bench/README.md: golongpoll itself)`
    out.set('golongpoll', why)
    out.set('rt-category-external', why)
    out.set('ceiling-category-external', why)
  }
  return out
}

async function runGroup (group: Group, skip: Map<string, string>, pool: ReturnType<typeof createPool>): Promise<GroupResult> {
  const rows: Row[] = []
  const dir = (target: string): string | undefined => profiled.has(target) ? profileDir : undefined
  const notMeasured = (target: string, label: string): Row | undefined => {
    const why = skip.get(target)
    return why === undefined ? undefined : { target, label, status: `not measured: ${why}` }
  }
  for (const spec of (group.deliveries ?? []).filter((d) => wanted(d.target))) {
    const row = notMeasured(spec.target, spec.label) ?? await deliver(pool, spec, dir(spec.target))
    log(row)
    rows.push(row)
  }
  const options: TargetOptions = { streamPrefix: 'bench-', streams: 1, historyLimit: 10_000, holdSeconds: 10 }
  for (const spec of (group.cannons ?? []).filter((c) => wanted(c.target))) {
    const row = notMeasured(spec.target, spec.label) ?? await cannon(spec, options, dir(spec.target))
    log(row)
    rows.push(row)
  }
  for (const spec of (group.inproc ?? []).filter((i) => wanted(i.target))) {
    const row = notMeasured(spec.target, spec.label) ?? await inproc(spec.target, spec.label, spec.count, spec.maxMs, options, dir(spec.target))
    log(row)
    rows.push(row)
  }
  const { deliveries: _deliveries, cannons: _cannons, inproc: _inproc, ...rest } = group
  return { group: rest, rows }
}

const begun = Date.now()

function log (row: Row): void {
  const parts = [`${((Date.now() - begun) / 1000).toFixed(0).padStart(4)}s  ${row.label.padEnd(46)} ${row.status}`]
  if (row.deliveredPerSec !== undefined) parts.push(`${Math.round(row.deliveredPerSec)} msg/s`, `p99 ${row.p99?.toFixed(1)} ms`, `cpu ${row.cpuPercent?.toFixed(0)}%`)
  if (row.requestsPerSec !== undefined) parts.push(`${Math.round(row.requestsPerSec)} req/s`)
  if (row.catchUpMs !== undefined) parts.push(`catch-up ${Math.round(row.catchUpMs)} ms`)
  console.log(parts.join('  '))
}

function machine (): Results['machine'] {
  return {
    hostname: os.hostname(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGb: os.totalmem() / 1024 ** 3,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version
  }
}

async function main (): Promise<void> {
  const started = Date.now()
  // The whole run is bounded: a stuck run ends itself.
  setTimeout(() => {
    console.error('bench: over the time limit, stopping')
    process.exit(3)
  }, quick ? 180_000 : 1_800_000).unref()
  const skip = await unavailable()
  for (const [target, why] of skip) console.log(`not measured: ${target} (${why})`)
  if (profiled.size > 0) mkdirSync(profileDir, { recursive: true })
  const pool = createPool(2)
  const out: ScenarioResult[] = []
  try {
    for (const scenario of scenarios(quick)) {
      // --only takes scenario ids (s1) or group ids (s1-10000-100).
      const picked = (group: Group): boolean => only === undefined
        ? scenario.onRequest !== true
        : only.includes(scenario.id) || only.includes(group.id)
      if (!scenario.groups.some(picked)) continue
      console.log(scenario.title)
      const groups: GroupResult[] = []
      for (const group of scenario.groups.filter(picked)) {
        console.log(` ${group.title}`)
        groups.push(await runGroup(group, skip, pool))
      }
      out.push({ id: scenario.id, title: scenario.title, ...(scenario.note === undefined ? {} : { note: scenario.note }), groups })
    }
  } finally {
    for (const load of pool.loads) load.stop()
  }
  const results: Results = {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    machine: machine(),
    durationSeconds: (Date.now() - started) / 1000,
    scenarios: out,
    flags: flags(out)
  }
  mkdirSync(resultsDir, { recursive: true })
  // Only a complete, unprofiled full run is `latest`; partial or profiled runs never overwrite it.
  const name = quick ? 'quick' : only !== undefined || targets !== undefined || profiled.size > 0 ? 'partial' : 'latest'
  writeFileSync(`${resultsDir}${name}.json`, `${JSON.stringify(results, null, 2)}\n`)
  writeFileSync(`${resultsDir}${name}.md`, markdown(results))
  console.log(`\nwrote bench/results/${name}.md and ${name}.json in ${results.durationSeconds.toFixed(0)} s`)
  for (const flag of results.flags) console.log(`below: ${flag}`)
  if (profiled.size > 0) console.log(summarizeProfiles(profileDir))
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
