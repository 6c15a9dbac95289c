/** One Server-Sent Event. */
export interface SseEvent {
  event: string
  data: string
  id: string | undefined
  retry: number | undefined
}

/**
 * Incremental `text/event-stream` parser (the WHATWG rules that matter here):
 * feed it chunks, it calls `onEvent` per complete event. Comment lines are ignored.
 */
export function createSseParser(onEvent: (event: SseEvent) => void): (chunk: string) => void {
  let buffer = ''
  let data: string[] = []
  let event = ''
  let id: string | undefined
  let retry: number | undefined
  return (chunk) => {
    buffer += chunk
    let newline: number
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline)
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1))
      if (line === '') {
        if (data.length > 0 || event !== '') onEvent({ event: event || 'message', data: data.join('\n'), id, retry })
        data = []
        event = ''
        retry = undefined
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1))
      if (field === 'data') data.push(value)
      else if (field === 'event') event = value
      else if (field === 'id') id = value
      else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value)
    }
  }
}
