/**
 * Entry of a server process: `node dist/server.js <target> <options JSON>`.
 * Starts one server under test on 127.0.0.1, then obeys the orchestrator over
 * IPC (publish at a rate, report RSS/CPU, close). Exits with its parent.
 */
import { writeFileSync } from 'node:fs'
import type { FromServer, PublishPlan, PublishReport, ToServer } from './protocol.js'
import { FILLER, type ServerTarget, type TargetFactory, type TargetOptions } from './servers/target.js'
import { now } from './tracker.js'

const ceilings = (): Promise<typeof import('./servers/ceilings.js')> => import('./servers/ceilings.js')
const peers = (): Promise<typeof import('./servers/peers.js')> => import('./servers/peers.js')
const rt = (): Promise<typeof import('./servers/rt.js')> => import('./servers/rt.js')
const external = (): Promise<typeof import('./servers/external.js')> => import('./servers/external.js')

/** Every server under test, loaded on demand so a server process imports only its own library. */
export const TARGETS: Record<string, () => Promise<TargetFactory>> = {
  'ceiling-sse': async () => (await ceilings()).ceilingSse,
  'better-sse': async () => (await peers()).betterSse,
  'fastify-sse': async () => (await peers()).fastifySsePeer,
  'rt-sse': async () => (await rt()).rtSse,
  'ceiling-lp': async () => (await ceilings()).ceilingLongPoll,
  'socketio': async () => (await peers()).socketIo,
  'rt-lp': async () => (await rt()).rtLongPoll,
  'rt-lp-noflush': async () => (await rt()).rtLongPollNoFlush,
  'ceiling-category': async () => (await ceilings()).ceilingCategory,
  'ceiling-category-headers': async () => (await ceilings()).ceilingCategoryHeaders,
  'express-longpoll': async () => (await peers()).expressLongpoll,
  'rt-category': async () => (await rt()).rtCategory,
  'golongpoll': async () => (await external()).golongpoll,
  'rt-category-external': async () => (await external()).rtCategoryExternal,
  'ceiling-category-external': async () => (await external()).ceilingCategoryExternal,
  'ceiling-publish': async () => (await ceilings()).ceilingPublish,
  'fastify-publish': async () => (await peers()).fastifyPublish,
  'rt-publish-memory': async () => (await rt()).rtPublishMemory,
  'rt-publish-redis': async () => (await rt()).rtPublishRedis
}

function send (message: FromServer): void {
  process.send?.(message)
}

/** Monotonic µs (the clock of V8's CPU profiles) of the last `mark`, and of the last end mark. */
let markUs: bigint | undefined
let markEndUs: bigint | undefined
let peakRss = 0
let readRss = (): number => process.memoryUsage.rss()
function sampleRss (): number {
  const rss = readRss()
  if (rss > peakRss) peakRss = rss
  return rss
}

function isPromise (value: unknown): value is Promise<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

/** Publishes `rate` messages/s for `durationMs`, round-robin over the streams; bounded by count and by 3× the time. */
async function publish (target: ServerTarget, plan: PublishPlan): Promise<PublishReport> {
  const total = Math.max(1, Math.round((plan.rate * plan.durationMs) / 1000))
  const counts = new Array<number>(plan.streams).fill(0)
  const start = now()
  const giveUp = start + plan.durationMs * 3 + 5000
  let sent = 0
  while (sent < total && now() < giveUp) {
    const due = Math.min(total, Math.floor(((now() - start) * plan.rate) / 1000) + 1)
    while (sent < due) {
      const stream = sent % plan.streams
      const seq = (counts[stream] as number) + 1
      counts[stream] = seq
      const result = target.publish(stream, { s: seq, t: now(), b: FILLER })
      if (isPromise(result)) await result
      sent++
    }
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  return { counts, sent, start, end: now() }
}

async function main (): Promise<void> {
  const name = process.argv[2] ?? ''
  const load = TARGETS[name]
  if (load === undefined) throw new Error(`unknown target ${name}`)
  const options = JSON.parse(process.argv[3] ?? '{}') as TargetOptions
  const target = await (await load())(options)
  if (target.rss !== undefined) readRss = target.rss
  const readCpuMs = target.cpuMs ?? ((): number => {
    const cpu = process.cpuUsage()
    return (cpu.user + cpu.system) / 1000
  })
  const sampler = setInterval(sampleRss, 100)
  process.on('message', (message: ToServer) => {
    void (async () => {
      if (message.type === 'stats') {
        // Started with --expose-gc (see ServerProcess.start); twice, as the first may leave weakly held objects.
        const collect = (globalThis as { gc?: () => void }).gc
        if (message.gc === true && collect !== undefined) {
          collect()
          collect()
        }
        const rss = sampleRss()
        send({ type: 'stats', stats: { rss, peakRss, cpuMs: readCpuMs(), at: now() } })
        peakRss = rss
      } else if (message.type === 'publish') {
        send({ type: 'published', report: await publish(target, message.plan) })
      } else if (message.type === 'inproc') {
        if (target.inproc === undefined) throw new Error(`${name} has no in-process publish`)
        send({ type: 'inproc', ...(await target.inproc(message.count, message.maxMs)) })
      } else if (message.type === 'mark') {
        const at = process.hrtime.bigint() / 1000n
        if (message.end === true) markEndUs = at
        else markUs = at
      } else if (message.type === 'close') {
        clearInterval(sampler)
        const markFile = process.env.BENCH_PROFILE_MARK
        if (markFile !== undefined && markUs !== undefined) {
          const mark = JSON.stringify({ fromUs: Number(markUs), toUs: markEndUs === undefined ? undefined : Number(markEndUs) })
          writeFileSync(markFile, mark)
          // A server in another process shares the monotonic clock: the same window.
          if (target.profileMark !== undefined) writeFileSync(target.profileMark, mark)
        }
        await target.close()
        process.exit(0)
      }
    })().catch((error: unknown) => send({ type: 'error', message: String(error) }))
  })
  send({ type: 'ready', port: target.port })
}

process.on('disconnect', () => process.exit(0))
// A safety net only: the orchestrator stops itself after 30 min, and 100k idle connections take minutes to open on a busy machine.
setTimeout(() => process.exit(2), 1_800_000).unref()
main().catch((error: unknown) => {
  send({ type: 'error', message: error instanceof Error ? error.message : String(error) })
  process.exit(1)
})
