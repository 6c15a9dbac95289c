import { createSseParser } from './sse-parser.js'
import { decodeLines, jsonl, type Transport, type TransportHost, type TransportSettings } from './transport.js'
import type { Command, ServerMessage } from './types.js'

/**
 * SSE over a streaming `fetch` POST: the body subscribes every subscription
 * (with history positions) on one connection; later commands are POSTed to the
 * same path with the session's id (`X-RT-SID`), and their replies arrive on the
 * stream. A stream that shows no welcome in time is taken as buffered by a proxy.
 */
export function sseTransport(settings: TransportSettings, host: TransportHost): Transport {
  const controller = new AbortController()
  let sid: string | undefined
  let retry: number | undefined
  let queued: Command[] = []
  let stale: ReturnType<typeof setTimeout> | undefined
  let done = false

  const transport: Transport = { name: 'sse', open, send, close }

  function arm(ms: number, why: string): void {
    clearTimeout(stale)
    stale = setTimeout(() => end(new Error(why)), ms)
  }

  function end(error: Error, fatal = false): void {
    if (done) return
    close()
    host.ended(transport, { error, retry, fatal, welcomed: sid !== undefined })
  }

  function receive(message: ServerMessage): void {
    if (message.type === 'welcome' && sid === undefined) {
      sid = message.sid ?? ''
      host.receive(message)
      if (queued.length > 0) send(queued.splice(0))
      return
    }
    host.receive(message)
  }

  async function open(commands: Command[]): Promise<void> {
    arm(settings.sseWelcomeTimeout, 'no welcome on the event stream (buffered by a proxy?)')
    try {
      const response = await settings.fetch(settings.url + settings.ssePath + settings.query, {
        method: 'POST',
        headers: { ...settings.headers, accept: 'text/event-stream', 'content-type': 'text/plain' },
        body: jsonl(commands),
        credentials: settings.credentials,
        signal: controller.signal
      })
      if (!response.ok || response.body === null) {
        if (response.status === 401) await response.text().then((text) => decodeLines(text, host.receive))
        return end(new Error(`event stream answered ${response.status}`), response.status === 401)
      }
      const parse = createSseParser((event) => {
        arm(sid === undefined ? settings.sseWelcomeTimeout : settings.staleTimeout, 'the event stream went silent')
        if (event.retry !== undefined) retry = event.retry
        decodeLines(event.data, receive)
      })
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      for (;;) {
        const { value, done: finished } = await reader.read()
        if (finished) break
        parse(value)
      }
      end(new Error('the event stream ended'))
    } catch (error) {
      end(error instanceof Error ? error : new Error(String(error)))
    }
  }

  function send(commands: Command[]): void {
    if (sid === undefined) {
      queued.push(...commands)
      return
    }
    settings.fetch(settings.url + settings.ssePath + settings.query, {
      method: 'POST',
      headers: { ...settings.headers, 'content-type': 'text/plain', 'x-rt-sid': sid },
      body: jsonl(commands),
      credentials: settings.credentials
    }).then((response) => {
      if (!response.ok) end(new Error(`commands answered ${response.status}`))
    }, (error: Error) => end(error))
  }

  function close(): void {
    done = true
    queued = []
    clearTimeout(stale)
    controller.abort()
  }

  return transport
}
