import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { RedisBroker } from '../src/index.js'
import { admin, cleanup, REDIS_URL, recorder, sleep, uniquePrefix } from './helpers.js'

// Long polling on three processes sharing the test Redis, driven by a seeded random client: overlapping
// requests of one session on different processes, aborted polls, subscribe/unsubscribe/perform commands,
// and a steady publisher. Every message of every stream and every command's effect must reach each
// session exactly once and in order. Replay a failure with RT_LP_SEED=<seed printed>.
const seed = Number(process.env.RT_LP_SEED ?? Math.floor(Math.random() * 2 ** 31))
const SESSIONS = 20
const REQUESTS = Number(process.env.RT_LP_REQUESTS ?? 2000)
const STREAMS = ['s0', 's1', 's2', 's3', 's4']
const POLL_INTERVAL = 0.5
// Every answer that carries anything is written at least a flush interval after its request arrived;
// aborts land within a few ms of sending (a late abort timer lets the request run instead), so an abort
// never races an answer being written: that is the window HTTP leaves open (see the long-poll README),
// which no server can close, and not what this test is about.
const FLUSH_INTERVAL = 250
const ABORT_WITHIN_MS = 3
const LATE_ABORT_MS = 50
const HUNG_MS = 10_000

/** mulberry32: a small seeded PRNG, so a run can be replayed. */
function random(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

// Bounded: ~40 s on a loaded 2-core machine, well under this file's limit.
t.setTimeout(90_000)
const redis = await admin(t)
const prefix = uniquePrefix('lp-random')
t.teardown(() => cleanup(redis, prefix))

type Line = Record<string, unknown>
const pubsub = (stream: string): string => JSON.stringify({ channel: '$pubsub', stream_name: stream })
const ECHO = JSON.stringify({ channel: 'Echo' })
const streamOf = new Map(STREAMS.map((stream) => [pubsub(stream), stream]))

async function startNode(): Promise<{ child: ChildProcess; url: string }> {
  const script = fileURLToPath(new URL('./fixtures/lp-node.ts', import.meta.url))
  // The TypeScript loader tap runs this file with, and nothing else of tap's (the nodes are not tests).
  const loader = process.execArgv.filter((arg) => arg.includes('typescript') || arg === '--enable-source-maps')
  const child = spawn(process.execPath, [...loader, script, REDIS_URL, prefix, String(POLL_INTERVAL), String(FLUSH_INTERVAL)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' }
  })
  let output = ''
  child.stdout!.setEncoding('utf8')
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      output += chunk
      const match = /listening (\S+)/.exec(output)
      if (match !== null) resolve(`${match[1]}/lp`)
    })
    child.once('exit', (code) => reject(new Error(`a test node exited early (${code})`)))
  })
  return { child, url }
}

/** What one session saw, checked as it arrives. */
class Observer {
  readonly problems: string[] = []
  /** Last offset received per stream, and whether the next one may jump (a new subscription period). */
  readonly last = new Map<string, { offset: number; epoch: string; fresh: boolean }>()
  readonly confirms = new Map<string, number>()
  readonly echoes: number[] = []

  constructor(private readonly name: string) {}

  take(lines: Line[]): void {
    for (const line of lines) {
      if (line.type === 'confirm_subscription') {
        const identifier = String(line.identifier)
        this.confirms.set(identifier, (this.confirms.get(identifier) ?? 0) + 1)
        const stream = streamOf.get(identifier)
        if (stream !== undefined) {
          const last = this.last.get(stream)
          this.last.set(stream, { offset: last?.offset ?? 0, epoch: last?.epoch ?? '', fresh: true })
        }
      } else if (line.type !== undefined) {
        if (line.type !== 'welcome') this.problems.push(`${this.name}: unexpected ${JSON.stringify(line)}`)
      } else if (line.identifier === ECHO) {
        this.echoes.push((line.message as { seq: number }).seq)
      } else {
        const stream = String(line.stream_id)
        const offset = Number(line.offset)
        const epoch = String(line.epoch)
        const last = this.last.get(stream)
        if (last === undefined) {
          this.problems.push(`${this.name}: ${stream}#${offset} before its subscription was confirmed`)
        } else if (last.epoch !== '' && last.epoch !== epoch) {
          this.problems.push(`${this.name}: ${stream} changed epoch`)
        } else if (offset <= last.offset) {
          this.problems.push(`${this.name}: ${stream}#${offset} again or out of order (after #${last.offset})`)
        } else if (!last.fresh && offset !== last.offset + 1) {
          this.problems.push(`${this.name}: ${stream} #${last.offset + 1}..#${offset - 1} lost`)
        }
        this.last.set(stream, { offset: Math.max(offset, last?.offset ?? 0), epoch, fresh: false })
      }
    }
  }
}

interface Answer {
  status: number
  lines: Line[]
  aborted: boolean
}

async function request(url: string, id: string | undefined, commands: unknown[], abortAfterMs?: number): Promise<Answer & { id: string | null }> {
  const controller = new AbortController()
  // A request is never held for longer than the poll interval and a flush: far past that, it hangs.
  const sentAt = Date.now()
  const timer = setTimeout(() => {
    if (abortAfterMs === undefined || Date.now() - sentAt < LATE_ABORT_MS) controller.abort()
  }, abortAfterMs ?? HUNG_MS)
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: id === undefined ? {} : { 'x-anycable-poll-id': id },
      body: commands.map((command) => JSON.stringify(command)).join('\n'),
      signal: controller.signal
    })
    const text = await response.text()
    return {
      status: response.status,
      id: response.headers.get('x-anycable-poll-id'),
      lines: text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Line),
      aborted: false
    }
  } catch (error) {
    if (controller.signal.aborted && abortAfterMs === undefined) return { status: -1, id: null, lines: [], aborted: false }
    if (controller.signal.aborted) return { status: 0, id: null, lines: [], aborted: true }
    throw error
  } finally {
    clearTimeout(timer)
  }
}

t.test(`seed ${seed}: exactly once and in order across three processes`, { timeout: 80_000 }, async (t) => {
  t.comment(`seed ${seed} (replay with RT_LP_SEED=${seed})`)
  const rand = random(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!
  const nodes = await Promise.all([startNode(), startNode(), startNode()])
  t.teardown(async () => {
    for (const { child } of nodes) {
      if (child.exitCode !== null) continue
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  })
  const urls = nodes.map((node) => node.url)

  // The publisher: one message at a time on a random stream, until the sessions are done.
  const publisher = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: recorder().logger, historyLimit: 10_000 })
  t.teardown(() => publisher.close())
  const published = new Map<string, number>()
  let publishing = true
  const publishLoop = Promise.all([1, 2].map(async (lane) => {
    const order = random(seed ^ (0x5bd1e995 * lane))
    while (publishing) {
      const stream = STREAMS[Math.floor(order() * STREAMS.length)]!
      const message = await publisher.publish(stream, { at: Date.now() })
      published.set(stream, Math.max(message.offset, published.get(stream) ?? 0))
      await sleep(2)
    }
  }))

  let budget = REQUESTS
  let unexpected: string[] = []
  const observers: Observer[] = []
  const expectedConfirms: Array<Map<string, number>> = []
  const expectedEchoes: number[] = []
  const subscribedAtEnd: Array<Set<string>> = []
  const check = (answer: Answer, what: string): void => {
    if (!answer.aborted && answer.status !== 200) unexpected.push(`${what}: status ${answer.status} ${JSON.stringify(answer.lines)}`)
  }

  async function runSession(index: number): Promise<() => Promise<void>> {
    const observer = new Observer(`session ${index}`)
    observers[index] = observer
    const confirms = new Map<string, number>([[ECHO, 1]])
    expectedConfirms[index] = confirms
    // Subscribed to two streams from the start, so that polls have something to carry.
    const initial = [pick(STREAMS.slice(0, 2)), pick(STREAMS.slice(2))]
    for (const stream of initial) confirms.set(pubsub(stream), 1)
    const connected = await request(pick(urls), undefined, [ECHO, ...initial.map(pubsub)].map((identifier) => ({ command: 'subscribe', identifier })))
    check(connected, `session ${index} connect`)
    observer.take(connected.lines)
    const id = connected.id!
    const subscribed = new Set<string>(initial)
    subscribedAtEnd[index] = subscribed
    const inFlight = new Set<string>()
    let seq = 0

    /** 0–2 commands on streams no other request in flight touches (their order across requests is the server's choice). */
    const commands = (): { commands: unknown[]; apply: () => void } => {
      const chosen: unknown[] = []
      const effects: Array<() => void> = []
      const count = rand() < 0.5 ? 0 : 1 + Math.floor(rand() * 2)
      for (let i = 0; i < count; i++) {
        if (rand() < 0.35) {
          const n = ++seq
          chosen.push({ command: 'message', identifier: ECHO, data: JSON.stringify({ action: 'echo', seq: n }) })
          continue
        }
        const stream = pick(STREAMS)
        if (inFlight.has(stream)) continue
        inFlight.add(stream)
        const identifier = pubsub(stream)
        if (subscribed.has(stream)) {
          chosen.push({ command: 'unsubscribe', identifier })
          effects.push(() => subscribed.delete(stream))
        } else {
          chosen.push({ command: 'subscribe', identifier })
          confirms.set(identifier, (confirms.get(identifier) ?? 0) + 1)
          effects.push(() => subscribed.add(stream))
        }
        effects.push(() => inFlight.delete(stream))
      }
      for (const command of chosen) {
        const data = (command as { data?: string }).data
        if (data !== undefined) expectedEchoes.push(index * 1_000_000 + (JSON.parse(data) as { seq: number }).seq)
      }
      return { commands: chosen, apply: () => { for (const effect of effects) effect() } }
    }

    const send = async (what: string, url: string, withCommands: boolean, abortAfterMs?: number): Promise<void> => {
      const { commands: chosen, apply } = withCommands ? commands() : { commands: [], apply: () => undefined }
      const answer = await request(url, id, chosen, abortAfterMs)
      check(answer, `session ${index} ${what}`)
      observer.take(answer.lines)
      apply()
    }

    while (budget > 0) {
      const roll = rand()
      if (roll < 0.3) {
        budget--
        await send('poll', pick(urls), true)
      } else if (roll < 0.8) {
        // Two requests of the session at once on two processes, the second 0–3 ms later.
        budget -= 2
        const [first, second] = [pick(urls), pick(urls)]
        const delay = Math.floor(rand() * 4)
        await Promise.all([send('overlap 1', first, true), sleep(delay).then(() => send('overlap 2', second, true))])
      } else {
        // A poll aborted while it is held (as AnyCable's client does to send commands), then the next one at once.
        budget--
        await send('aborted poll', pick(urls), false, Math.floor(rand() * (ABORT_WITHIN_MS + 1)))
      }
    }
    // Once publishing stopped: poll until every subscribed stream was read to its last published offset.
    return async () => {
      for (let i = 0; i < 30; i++) {
        const behind = [...subscribed].some((stream) => (observer.last.get(stream)?.offset ?? 0) < (published.get(stream) ?? 0))
        const confirmsPending = [...confirms].some(([identifier, count]) => (observer.confirms.get(identifier) ?? 0) < count)
        if (!behind && !confirmsPending && observer.echoes.length >= seq) return
        await send('drain', pick(urls), false)
      }
    }
  }

  const started = Date.now()
  let drains: Array<() => Promise<void>>
  try {
    drains = await Promise.all(Array.from({ length: SESSIONS }, (_, index) => runSession(index)))
  } finally {
    publishing = false
    await publishLoop
  }
  await Promise.all(drains.map((drain) => drain()))
  t.comment(`${REQUESTS} requests of ${SESSIONS} sessions in ${Date.now() - started} ms; ${[...published.values()].reduce((a, b) => a + b, 0)} messages published`)

  const problems = observers.flatMap((observer) => observer.problems)
  t.same(unexpected, [], `seed ${seed}: every request answered 200 (or aborted)`)
  t.same(problems, [], `seed ${seed}: no message lost, repeated or out of order`)
  for (let index = 0; index < SESSIONS; index++) {
    const observer = observers[index]!
    t.same(Object.fromEntries(observer.confirms), Object.fromEntries(expectedConfirms[index]!), `seed ${seed}: session ${index}: one confirmation per subscribe`)
    for (const stream of subscribedAtEnd[index]!) {
      t.equal(observer.last.get(stream)?.offset, published.get(stream), `seed ${seed}: session ${index} read ${stream} to its end`)
    }
  }
  const echoes = observers.flatMap((observer, index) => observer.echoes.map((n) => index * 1_000_000 + n)).sort((a, b) => a - b)
  t.same(echoes, [...expectedEchoes].sort((a, b) => a - b), `seed ${seed}: every perform ran once and its reply arrived once`)
  unexpected = []
})
