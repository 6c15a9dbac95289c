import { decodeLines, jsonl, type Transport, type TransportHost, type TransportSettings } from './transport.js'
import type { Command } from './types.js'

/**
 * AnyCable long polling: POST to connect (the answer carries
 * `X-Anycable-Poll-ID`), then POST polls with that header. Commands go out on a
 * new poll at once; unlike AnyCable's client the held poll is not aborted (the
 * server answers it empty when the newer poll arrives), so a response that was
 * already on its way is never thrown away.
 */
export function longPollTransport(settings: TransportSettings, host: TransportHost): Transport {
  const controller = new AbortController()
  let pollId: string | undefined
  let pending: Command[] = []
  let inFlight = 0
  let scheduled = false
  let done = false

  const transport: Transport = { name: 'long-poll', open, send, close }

  function end(error: Error, fatal = false): void {
    if (done) return
    close()
    host.ended(transport, { error, fatal, welcomed: pollId !== undefined })
  }

  async function request(commands: Command[]): Promise<boolean> {
    const headers: Record<string, string> = { ...settings.headers, 'content-type': 'text/plain' }
    if (pollId !== undefined) headers['x-anycable-poll-id'] = pollId
    const response = await settings.fetch(settings.url + settings.longPollPath + settings.query, {
      method: 'POST',
      headers,
      body: commands.length > 0 ? jsonl(commands) : null,
      credentials: settings.credentials,
      signal: controller.signal
    })
    const text = await response.text()
    if (done) return false
    if (response.status === 401) {
      decodeLines(text, host.receive)
      // 401 on connect: refused; on a poll: the session expired and a reconnect resumes it.
      end(new Error(pollId === undefined ? 'unauthorized' : 'long-poll session expired'), pollId === undefined)
      return false
    }
    if (!response.ok) {
      end(new Error(`long poll answered ${response.status}`))
      return false
    }
    pollId ??= response.headers.get('x-anycable-poll-id') ?? undefined
    if (pollId === undefined) {
      end(new Error('no X-Anycable-Poll-ID in the answer (is it exposed by CORS?)'))
      return false
    }
    decodeLines(text, host.receive)
    return true
  }

  function poll(): void {
    scheduled = false
    if (done) return
    inFlight++
    request(pending.splice(0)).then((ok) => {
      inFlight--
      if (ok && inFlight === 0 && !scheduled) poll()
    }, (error: Error) => {
      inFlight--
      end(error)
    })
  }

  function open(commands: Command[]): void {
    request(commands).then((ok) => { if (ok) poll() }, (error: Error) => end(error))
  }

  function send(commands: Command[]): void {
    pending.push(...commands)
    if (pollId === undefined || scheduled) return
    scheduled = true
    // Commands sent in the same tick share one poll.
    queueMicrotask(poll)
  }

  function close(): void {
    done = true
    pending = []
    controller.abort()
  }

  return transport
}
