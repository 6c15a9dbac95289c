/** One Server-Sent Event. Fields are written in the order `event`, `data`, `id`, `retry`. */
export interface SseEvent {
  event?: string
  data: string
  id?: string
  retry?: number
}

/**
 * The SSE wire format: one `data:` line per line of `data` (so a payload can
 * never end an event early), then a blank line.
 */
export function encodeEvent(event: SseEvent): string {
  let frame = event.event === undefined ? '' : `event: ${event.event}\n`
  for (const line of event.data.split(/\r\n|\r|\n/)) frame += `data: ${line}\n`
  if (event.id !== undefined) frame += `id: ${event.id}\n`
  if (event.retry !== undefined) frame += `retry: ${event.retry}\n`
  return `${frame}\n`
}

/** A comment line: keeps proxies from closing an idle stream, ignored by EventSource. */
export const HEARTBEAT_FRAME = ': ping\n\n'
