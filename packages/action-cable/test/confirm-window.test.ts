import t from 'tap'
import { startCable } from './fixture/cable.mjs'
import { json, open, poll, pollUntil, startBridge, subscribe } from './helpers.js'

const cable = await startCable()
t.teardown(() => cable.stop())

// The fixture's ChatChannel sends a message right behind `confirm_subscription` when the identifier says `greet`.
const greeted = (room: string): string => JSON.stringify({ channel: 'ChatChannel', room, greet: true })

t.test('SSE: a message the upstream sends right behind confirm_subscription is delivered', async (t) => {
  const { base } = await startBridge(t, cable)
  const identifier = greeted('sse-window')
  const stream = await open(`${base}/events`, { method: 'POST', headers: { cookie: 'user=gwen' }, body: JSON.stringify(subscribe(identifier)) })
  t.equal(stream.status, 200)
  await stream.nextMatching((e) => e.event === 'confirm_subscription')
  const message = json(await stream.nextMatching((e) => e.event === 'message')) as { identifier: string; message: unknown }
  t.match(message, { identifier, message: { greeting: 'welcome to sse-window', user: 'gwen' } })
  stream.close()
})

t.test('long polling: a message right behind confirm_subscription is delivered, subscribed at connect or by a later poll', async (t) => {
  const { base } = await startBridge(t, cable)
  const atConnect = greeted('lp-connect')
  const first = await poll(base, { cookie: 'user=hank', lines: [subscribe(atConnect)] })
  t.equal(first.status, 200)
  const id = first.id!
  const isGreeting = (identifier: string) => (m: Record<string, unknown>): boolean => m.identifier === identifier && 'message' in m
  if (!first.messages.some(isGreeting(atConnect))) await pollUntil(base, id, isGreeting(atConnect))
  t.pass('greeting of the subscription made at connect')

  const later = greeted('lp-later')
  const second = await poll(base, { id, lines: [subscribe(later)] })
  t.equal(second.status, 200)
  const seen = second.messages.some(isGreeting(later)) ? second.messages : await pollUntil(base, id, isGreeting(later))
  t.same(seen.find(isGreeting(later))?.message, { greeting: 'welcome to lp-later', user: 'hank' })
})
