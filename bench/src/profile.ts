import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples?: number[]
  timeDeltas?: number[]
}

/**
 * Self time per function (name + file:line), the top `limit`, as text lines.
 * Samples outside [`fromUs`, `toUs`] (start-up, connections, shutdown) are left out.
 */
export function topFunctions (profile: CpuProfile, limit = 20, fromUs = 0, toUs = Number.POSITIVE_INFINITY): string[] {
  const selfTime = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  let at = profile.startTime
  for (let i = 0; i < samples.length; i++) {
    const delta = deltas[i] ?? 0
    at += delta
    if (at < fromUs || at > toUs) continue
    const id = samples[i] as number
    selfTime.set(id, (selfTime.get(id) ?? 0) + delta)
  }
  const byFunction = new Map<string, number>()
  let total = 0
  for (const node of profile.nodes) {
    const time = selfTime.get(node.id) ?? 0
    total += time
    const frame = node.callFrame
    const where = frame.url === '' ? '' : ` ${frame.url.replace(/^file:\/\//, '').replace(/^.*node_modules\/\.pnpm\/[^/]+\/node_modules\//, '')}:${frame.lineNumber + 1}`
    const key = `${frame.functionName === '' ? '(anonymous)' : frame.functionName}${where}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + time)
  }
  return [...byFunction.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, time]) => `${((time / Math.max(1, total)) * 100).toFixed(1).padStart(5)}%  ${(time / 1000).toFixed(0).padStart(6)} ms  ${key}`)
}

/** Writes `<profile>.txt` next to every `.cpuprofile` in `dir` and returns them all as one text. */
export function summarizeProfiles (dir: string): string {
  const parts: string[] = []
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile')).sort()) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
    const markFile = join(dir, file.replace(/\.cpuprofile$/, '.mark.json'))
    const mark = existsSync(markFile) ? JSON.parse(readFileSync(markFile, 'utf8')) as { fromUs: number; toUs?: number } : { fromUs: 0 }
    const toUs = mark.toUs ?? profile.endTime
    const window = mark.fromUs === 0 ? 'whole process' : `the measured window, ${((Math.min(toUs, profile.endTime) - Math.max(mark.fromUs, profile.startTime)) / 1e6).toFixed(1)} s`
    const text = [`${file}: top self time (${window})`, ...topFunctions(profile, 25, mark.fromUs, toUs)].join('\n')
    writeFileSync(join(dir, file.replace(/\.cpuprofile$/, '.txt')), `${text}\n`)
    parts.push(text)
  }
  return parts.join('\n\n')
}
