/**
 * A test double of AnyCable's `@anycable/long-polling` 0.4 transport, written
 * from its documented behaviour (../shared/protocols/anycable.md §4):
 * - connect: POST without body; on 2xx read the lines and `X-Anycable-Poll-ID`,
 *   then poll after `cooldown`;
 * - poll: POST with `X-Anycable-Poll-ID` and the buffered commands joined by
 *   `\n` (no trailing newline); the AbortController is dropped as soon as the
 *   response headers arrive; after a 2xx, poll again after `cooldown`;
 * - send: buffer commands; `sendBuffer` ms later abort the in-flight poll (if
 *   its headers have not arrived) and poll at once with the commands.
 */
export class AnyCableLongPolling {
  readonly frames: Array<Record<string, unknown>> = []
  sessionId: string | undefined
  errors: unknown[] = []
  aborts = 0
  private buffer: string[] = []
  private abortController: AbortController | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private sendTimer: NodeJS.Timeout | undefined
  private connected = false

  constructor(private readonly url: string, private readonly opts: { cooldown: number; sendBuffer: number }) {}

  async open(): Promise<void> {
    const response = await fetch(this.url, { method: 'POST' })
    if (!response.ok) throw new Error(`Unexpected status code: ${response.status}`)
    this.connected = true
    await this.process(response)
    this.sessionId = response.headers.get('x-anycable-poll-id') ?? undefined
    this.pollTimer = setTimeout(() => void this.poll(), this.opts.cooldown)
  }

  send(command: Record<string, unknown>): void {
    this.buffer.push(JSON.stringify(command))
    this.sendTimer ??= setTimeout(() => this.flush(), this.opts.sendBuffer)
  }

  close(): void {
    this.connected = false
    clearTimeout(this.pollTimer)
    clearTimeout(this.sendTimer)
    this.abortController?.abort()
  }

  private flush(): void {
    this.sendTimer = undefined
    if (!this.connected) return
    clearTimeout(this.pollTimer)
    this.pollTimer = undefined
    if (this.abortController !== undefined) {
      this.aborts++
      this.abortController.abort()
    }
    void this.poll()
  }

  private async poll(): Promise<void> {
    this.pollTimer = undefined
    clearTimeout(this.sendTimer)
    this.sendTimer = undefined
    const body = this.buffer.length > 0 ? this.buffer.join('\n') : undefined
    this.buffer.length = 0
    const controller = new AbortController()
    this.abortController = controller
    try {
      const init: RequestInit = { method: 'POST', headers: { 'X-Anycable-Poll-ID': this.sessionId! }, signal: controller.signal }
      if (body !== undefined) init.body = body
      const response = await fetch(this.url, init)
      if (this.abortController === controller) this.abortController = undefined
      if (!response.ok) throw new Error(`Unexpected status code: ${response.status}`)
      await this.process(response)
      if (this.connected) {
        clearTimeout(this.pollTimer)
        this.pollTimer = setTimeout(() => void this.poll(), this.opts.cooldown)
      }
    } catch (error) {
      if (this.abortController === controller) this.abortController = undefined
      if ((error as Error).name !== 'AbortError' && this.connected) this.errors.push(error)
    }
  }

  private async process(response: Response): Promise<void> {
    for (const line of (await response.text()).split('\n')) if (line !== '') this.frames.push(JSON.parse(line) as Record<string, unknown>)
  }
}
