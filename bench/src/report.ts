import type { Row } from './measure.js'
import type { Group } from './scenarios.js'

export interface GroupResult {
  group: Omit<Group, 'deliveries' | 'cannons' | 'inproc'>
  rows: Row[]
}

export interface ScenarioResult {
  id: string
  title: string
  note?: string
  groups: GroupResult[]
}

export interface Machine {
  hostname: string
  cpuModel: string
  cores: number
  memoryGb: number
  os: string
  node: string
}

export interface Results {
  date: string
  mode: 'full' | 'quick'
  machine: Machine
  durationSeconds: number
  scenarios: ScenarioResult[]
  /** rt rows below 0.8× the ceiling or below a peer. */
  flags: string[]
}

const fmt = (value: number | undefined, digits = 0): string => {
  if (value === undefined) return '—'
  if (!Number.isFinite(value)) return 'n/a'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}
const ms = (value: number | undefined): string => value === undefined || !Number.isFinite(value) ? fmt(value) : value < 10 ? fmt(value, 2) : value < 100 ? fmt(value, 1) : fmt(value)
const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? undefined : a / b
const showRatio = (value: number | undefined): string => value === undefined ? '—' : `${value.toFixed(2)}×`

/** The main throughput of a row (deliveries/s, or requests/s), and its per-CPU-second figure. */
function main (group: GroupResult['group'], row: Row): number | undefined {
  return group.kind === 'requests' ? row.requestsPerSec : row.deliveredPerSec
}

const measured = (row: Row): boolean => !row.status.startsWith('not measured') && !row.status.startsWith('FAIL: process') && (row.deliveredPerSec !== undefined || row.requestsPerSec !== undefined)

/** rt÷this ratios of one group: throughput, throughput per server CPU second, and (storm) catch-up speed. */
export function ratios (result: GroupResult, row: Row): { main?: number; cpu?: number; catchUp?: number } {
  const rt = result.rows.find((r) => r.target === result.group.rt)
  if (rt === undefined || rt === row || !measured(rt) || !measured(row)) return {}
  return {
    main: ratio(main(result.group, rt), main(result.group, row)),
    cpu: ratio(rt.perCpuSecond, row.perCpuSecond),
    catchUp: ratio(row.catchUpMs, rt.catchUpMs)
  }
}

/** rt's memory per idle connection over the ceiling's above this is flagged. */
export const IDLE_MEMORY_BOUND = 1.1

/** rt ÷ peer below this is "below a peer" (1 minus the noise between two runs here). */
export const PEER_TOLERANCE = 0.95

/** rt rows that are below 0.8× the ceiling or below a peer (on throughput, per-CPU throughput, or catch-up time). */
export function flags (scenarios: ScenarioResult[]): string[] {
  const out: string[] = []
  for (const scenario of scenarios) {
    for (const result of scenario.groups) {
      const rt = result.rows.find((r) => r.target === result.group.rt)
      if (rt !== undefined && rt.status !== 'ok' && !rt.status.startsWith('not measured')) out.push(`${scenario.id} ${result.group.title}: rt ${rt.status}`)
      for (const row of result.rows) {
        // Other rt rows are variants of the same transport (another setting), not bars to clear.
        if (row === rt || row.target.startsWith('rt-')) continue
        const r = ratios(result, row)
        const reference = row.target === result.group.ceiling || (result.group.floors ?? []).includes(row.target)
        // Below a peer means by more than run-to-run noise on a shared machine (5 %).
        const floor = reference ? 0.8 : PEER_TOLERANCE
        const peerFailed = row.status !== 'ok'
        if (result.group.kind === 'idle') {
          // Memory: rt may hold at most 1.1× the ceiling's per connection (issue 20).
          const memory = ratio(rt?.rssIdleKbPerConn, row.rssIdleKbPerConn)
          if (reference && memory !== undefined && memory > IDLE_MEMORY_BOUND) out.push(`${scenario.id} ${result.group.title}: rt holds ${memory.toFixed(2)}× the memory per idle connection of ${row.label}`)
          continue
        }
        const checks = result.group.kind === 'storm'
          ? [['catch-up speed', r.catchUp], ['throughput per CPU-second', r.cpu]] as const
          : [['throughput', r.main], ['throughput per CPU-second', r.cpu]] as const
        for (const [what, value] of checks) {
          // A peer that loses messages is no bar to clear; the ceiling always is.
          if (value !== undefined && value < floor && (!peerFailed || reference)) {
            out.push(`${scenario.id} ${result.group.title}: rt ${what} is ${value.toFixed(2)}× ${row.label}`)
          }
        }
      }
    }
  }
  return out
}

function deliveryTable (result: GroupResult, storm: boolean): string[] {
  const polls = result.rows.some((row) => row.pollsPerSec !== undefined)
  const lines = [
    storm
      ? '| | status | conns | lost | dup | catch-up ms | p50 ms | p99 ms | reconnects | load KB/conn | CPU % | rt ÷ this (catch-up speed) |'
      : `| | status | conns | sent msg/s | delivered msg/s |${polls ? ' polls/s |' : ''} lost | dup | p50 ms | p99 ms | idle KB/conn | load KB/conn | CPU % | deliveries/CPU-s | rt ÷ this (msg/s) | rt ÷ this (per CPU-s) |`,
    storm ? '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|' : `|---|---|---:|---:|---:|${polls ? '---:|' : ''}---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`
  ]
  for (const row of result.rows) {
    const r = ratios(result, row)
    const conns = row.connected === undefined ? '—' : row.connected === row.clients ? fmt(row.connected) : `${fmt(row.connected)}/${fmt(row.clients)}`
    lines.push(storm
      ? `| ${row.label} | ${row.status} | ${conns} | ${fmt(row.lost)} | ${fmt(row.duplicates)} | ${fmt(row.catchUpMs)} | ${ms(row.p50)} | ${ms(row.p99)} | ${fmt(row.reconnects)} | ${fmt(row.rssLoadKbPerConn, 1)} | ${fmt(row.cpuPercent)} | ${showRatio(r.catchUp)} |`
      : `| ${row.label} | ${row.status} | ${conns} | ${fmt(row.sentPerSec)} | ${fmt(row.deliveredPerSec)} |${polls ? ` ${fmt(row.pollsPerSec)} |` : ''} ${fmt(row.lost)} | ${fmt(row.duplicates)} | ${ms(row.p50)} | ${ms(row.p99)} | ${fmt(row.rssIdleKbPerConn, 1)} | ${fmt(row.rssLoadKbPerConn, 1)} | ${fmt(row.cpuPercent)} | ${fmt(row.perCpuSecond)} | ${showRatio(r.main)} | ${showRatio(r.cpu)} |`)
  }
  return lines
}

/** Idle connections and one broadcast: memory per connection, and how fast the broadcast reached everyone. */
function idleTable (result: GroupResult): string[] {
  const rt = result.rows.find((r) => r.target === result.group.rt)
  const lines = ['| | status | conns | lost | dup | broadcast p50 ms | p99 ms | max ms | idle KB/conn | rt ÷ this (KB/conn) |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
  for (const row of result.rows) {
    const conns = row.connected === undefined ? '—' : row.connected === row.clients ? fmt(row.connected) : `${fmt(row.connected)}/${fmt(row.clients)}`
    const memory = rt === undefined || rt === row ? undefined : ratio(rt.rssIdleKbPerConn, row.rssIdleKbPerConn)
    lines.push(`| ${row.label} | ${row.status} | ${conns} | ${fmt(row.lost)} | ${fmt(row.duplicates)} | ${ms(row.p50)} | ${ms(row.p99)} | ${ms(row.maxLatency)} | ${fmt(row.rssIdleKbPerConn, 1)} | ${showRatio(memory)} |`)
  }
  return lines
}

function requestTable (result: GroupResult): string[] {
  const lines = ['| | status | req/s (or publishes/s) | p50 ms | p99 ms | CPU % | per CPU-s | rt ÷ this | rt ÷ this (per CPU-s) |', '|---|---|---:|---:|---:|---:|---:|---:|---:|']
  for (const row of result.rows) {
    const r = ratios(result, row)
    lines.push(`| ${row.label} | ${row.status} | ${fmt(row.requestsPerSec)} | ${ms(row.p50)} | ${ms(row.p99)} | ${fmt(row.cpuPercent)} | ${fmt(row.perCpuSecond)} | ${showRatio(r.main)} | ${showRatio(r.cpu)} |`)
  }
  return lines
}

/** One line per table: rt's figure, its best peer, and the ratios against that peer and the ceiling. */
function summary (results: Results): string[] {
  const lines = [
    '| scenario | rt | rt status | rt p99 ms | best peer | rt ÷ best peer | rt ÷ best peer (per CPU-s) | rt ÷ ceiling | rt ÷ ceiling (per CPU-s) |',
    '|---|---:|---|---:|---|---:|---:|---:|---:|'
  ]
  for (const scenario of results.scenarios) {
    for (const result of scenario.groups) {
      const { group } = result
      const rt = result.rows.find((r) => r.target === group.rt)
      if (rt === undefined) continue
      const storm = group.kind === 'storm'
      if (group.kind === 'idle') {
        const ceiling = result.rows.find((r) => r.target === group.ceiling)
        const memory = ratio(rt.rssIdleKbPerConn, ceiling?.rssIdleKbPerConn)
        lines.push(`| ${scenario.id}: ${group.title} | ${fmt(rt.rssIdleKbPerConn, 1)} KB/conn | ${rt.status} | ${ms(rt.p99)} | — | — | — | memory ${showRatio(memory)} (ceiling ${fmt(ceiling?.rssIdleKbPerConn, 1)} KB/conn) | — |`)
        continue
      }
      const unit = group.kind === 'requests' ? 'req/s' : storm ? 'ms to catch up' : 'msg/s'
      const figure = storm ? rt.catchUpMs : main(group, rt)
      // Floors (a bare Fastify route) stand in where a scenario has no peer.
      const peers = result.rows.filter((r) => r !== rt && !r.target.startsWith('rt-') && r.target !== group.ceiling)
      const ok = peers.filter((r) => r.status === 'ok')
      const pick = (r: Row): number => (storm ? -(r.catchUpMs ?? Number.POSITIVE_INFINITY) : main(group, r) ?? 0)
      const best = ok.sort((a, b) => pick(b) - pick(a))[0]
      const failedPeers = peers.filter((r) => r.status.startsWith('FAIL')).map((r) => `${r.label} FAIL`)
      const peerText = best === undefined ? (failedPeers.length > 0 ? failedPeers.join('; ') : '—') : [best.label, ...failedPeers].join('; ')
      const ceiling = result.rows.find((r) => r.target === group.ceiling)
      const peerRatios = best === undefined ? {} : ratios(result, best)
      const toPeer = storm ? peerRatios.catchUp : peerRatios.main
      const toCeiling = ceiling === undefined ? {} : ratios(result, ceiling)
      lines.push(`| ${scenario.id}: ${group.title} | ${fmt(figure)} ${unit} | ${rt.status} | ${ms(rt.p99)} | ${peerText} | ${showRatio(toPeer)} | ${showRatio(peerRatios.cpu)} | ${showRatio(storm ? toCeiling.catchUp : toCeiling.main)} | ${showRatio(toCeiling.cpu)} |`)
    }
  }
  return lines
}

export function markdown (results: Results): string {
  const m = results.machine
  const lines = [
    `# rt benchmark results (${results.mode})`,
    '',
    '| machine | CPU model | cores | memory | OS | Node | date | run time |',
    '|---|---|---:|---:|---|---|---|---:|',
    `| ${m.hostname} | ${m.cpuModel} | ${m.cores} | ${m.memoryGb.toFixed(1)} GB | ${m.os} | ${m.node} | ${results.date} | ${fmt(results.durationSeconds)} s |`,
    '',
    'Server, load generators (2 processes) and autocannon share the machine\'s cores on 127.0.0.1. "rt ÷ this" > 1 means rt is ahead.',
    'A row whose status is FAIL lost or duplicated messages (or clients never connected): its speed does not count.',
    'CPU % is the server process only (100 % = one core). KB/conn: server RSS growth over the empty server, per connection (idle: connected, nothing published, read after a full GC; load: peak while publishing).',
    '',
    '## Summary',
    '',
    'rt\'s main row of every table against the best peer that lost nothing and against the ceiling (storm: catch-up speed). Details per scenario below.',
    '',
    ...summary(results),
    ''
  ]
  for (const scenario of results.scenarios) {
    lines.push(`## ${scenario.title}`, '')
    if (scenario.note !== undefined) lines.push(scenario.note, '')
    for (const result of scenario.groups) {
      lines.push(`### ${result.group.title}`, '')
      if (result.group.note !== undefined) lines.push(result.group.note, '')
      const kind = result.group.kind
      lines.push(...(kind === 'requests' ? requestTable(result) : kind === 'idle' ? idleTable(result) : deliveryTable(result, kind === 'storm')), '')
    }
  }
  lines.push('## rt below 0.8× the ceiling or below a peer (by more than 5 %)', '')
  if (results.flags.length === 0) lines.push('None.')
  for (const flag of results.flags) lines.push(`- ${flag}`)
  lines.push('', 'Hot spots and what would remove them: bench/README.md.', '')
  return lines.join('\n')
}
