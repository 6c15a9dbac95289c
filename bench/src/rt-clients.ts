import { poll } from '@rt/category-poll/client'
import { PollLoopBase, type BenchClient, type PollContext } from './poll-clients.js'
import { now, type ClientTracker, type Payload } from './tracker.js'

/** The `$pubsub` identifier of a public stream, keys sorted as AnyCable builds it. */
export function pubsubIdentifier (stream: string): string {
  return JSON.stringify({ channel: '$pubsub', stream_name: stream })
}

/**
 * AnyCable long polling against `@rt/long-poll`: the first POST (JSONL
 * `subscribe` command) opens the session and its answer carries
 * `X-Anycable-Poll-ID`; every later POST with that header returns what the
 * session's cursors have past them (JSONL), waiting up to the poll interval.
 */
export class RtLongPollClient extends PollLoopBase {
  private pollId: string | undefined
  /** From the welcome: restores the session (its cursors) if the server expired it between two polls. */
  private sid: string | undefined

  constructor (tracker: ClientTracker, context: PollContext, private readonly path: string, private readonly stream: string) {
    super(tracker, context)
  }

  private receiveLines (body: string): boolean {
    let confirmed = false
    for (const line of body.split('\n')) {
      if (line === '') continue
      let message: { type?: string; message?: Payload; sid?: string }
      try {
        message = JSON.parse(line) as { type?: string; message?: Payload; sid?: string }
      } catch {
        continue
      }
      if (message.type === 'welcome' && typeof message.sid === 'string') this.sid = message.sid
      else if (message.type === 'confirm_subscription') confirmed = true
      else if (message.type === 'reject_subscription') throw new Error('subscription rejected')
      else if (typeof message.message === 'object' && message.message !== null && typeof message.message.s === 'number') this.deliver(message.message)
    }
    return confirmed
  }

  protected async first (): Promise<void> {
    const subscribe = JSON.stringify({ command: 'subscribe', identifier: pubsubIdentifier(this.stream) })
    let answer = await this.request('POST', this.path, { 'content-type': 'text/plain' }, subscribe + '\n')
    if (answer.status !== 200) throw new Error(`connect answered ${answer.status}`)
    const id = answer.headers['x-anycable-poll-id']
    if (typeof id !== 'string') throw new Error('no X-Anycable-Poll-ID')
    this.pollId = id
    // The subscription may be confirmed on the connecting answer or on the next poll.
    let confirmed = this.receiveLines(answer.body)
    for (let attempt = 0; attempt < 5 && !confirmed; attempt++) {
      answer = await this.request('POST', this.path, { 'x-anycable-poll-id': id })
      if (answer.status !== 200) throw new Error(`poll answered ${answer.status}`)
      confirmed = this.receiveLines(answer.body)
    }
    if (!confirmed) throw new Error('subscription not confirmed')
  }

  protected async poll (): Promise<void> {
    const answer = await this.request('POST', this.path, { 'x-anycable-poll-id': this.pollId ?? '' })
    if (answer.status === 401 && this.sid !== undefined) return this.restore()
    if (answer.status !== 200) throw new Error(`poll answered ${answer.status}`)
    this.receiveLines(answer.body)
  }

  /**
   * The server expired the session (no poll within its keepalive timeout, e.g.
   * an overloaded load process): reconnect with `X-AnyCable-Restore-SID`, as
   * AnyCable's client does, so the session resumes from its cursors.
   */
  private async restore (): Promise<void> {
    this.reconnects++
    const answer = await this.request('POST', this.path, { 'content-type': 'text/plain', 'x-anycable-restore-sid': this.sid ?? '' })
    if (answer.status !== 200) throw new Error(`restore answered ${answer.status}`)
    const id = answer.headers['x-anycable-poll-id']
    if (typeof id !== 'string') throw new Error('no X-Anycable-Poll-ID')
    this.pollId = id
    this.receiveLines(answer.body)
  }
}

/**
 * golongpoll's loop as `@rt/category-poll/client` ships it: `for await (const
 * event of poll({ url, category, sinceTime }))`, on Node's fetch.
 */
export class CategoryHelperClient implements BenchClient {
  reconnects = 0
  errors = 0
  /** `poll()` hides its requests: not counted. */
  polls = 0
  private readonly controller = new AbortController()

  constructor (readonly tracker: ClientTracker, private readonly context: PollContext, private readonly path: string, private readonly category: string) {}

  async open (_timeoutMs: number): Promise<void> {
    const events = poll<Payload>({
      url: `http://127.0.0.1:${this.context.port}${this.path}`,
      category: this.category,
      timeoutSeconds: this.context.holdSeconds,
      // Everything from now on, as the golongpoll loop does on its first request.
      sinceTime: Date.now() - 1000,
      retryDelayMs: 50,
      signal: this.controller.signal
    })
    void (async () => {
      try {
        for await (const event of events) {
          const at = now()
          if (this.tracker.receive(event.data, at, this.context.latency)) this.context.onMessage(at)
        }
      } catch {
        if (!this.controller.signal.aborted) this.errors++
      }
    })()
  }

  close (): void {
    this.controller.abort()
  }
}
