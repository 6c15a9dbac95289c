import type {} from '@rt/core'
import type { Page } from 'playwright-core'
import { chromiumTest, launch, openTab, range, sleep, startRtServer, tabState, waitForTab } from './browser.js'

const TABS = 8

chromiumTest('eight tabs of one origin over HTTP/1.1 share one event stream; the leader closes mid-stream', async (t) => {
  const { app, url, streams } = await startRtServer(t)
  const browser = await launch(t)
  const context = await browser.newContext()
  const options = { shareAcrossTabs: true, heartbeat: 250, leaderTimeout: 2000, backoff: { min: 50, max: 500 } }
  const pages = []
  for (let i = 1; i <= TABS; i++) pages.push(await openTab(context, url, ['all', `tab_${i}`], options, (error) => t.fail(`tab ${i}: ${error}`)))
  for (const page of pages) await waitForTab(page, 'rt.connected === 2')
  t.equal(streams.max, 1, 'one event stream to the server for eight tabs')
  t.equal(app.rt.hub.listeners('all'), 1, 'one subscription to the shared stream')
  const leaders = []
  for (const page of pages) if ((await tabState(page)).isLeader === true) leaders.push(page)
  t.equal(leaders.length, 1, 'one tab leads')

  for (let n = 1; n <= 300; n++) {
    await app.rt.publish('all', { n })
    if (n % 100 === 0) for (let i = 1; i <= TABS; i++) await app.rt.publish(`tab_${i}`, { n })
  }
  for (const page of pages) await waitForTab(page, 'rt.got.all?.length >= 300 && Object.values(rt.got).every((o) => o.length >= 3)')
  for (const [i, page] of pages.entries()) {
    const { got } = await tabState(page)
    t.same(Object.keys(got).sort(), ['all', `tab_${i + 1}`], `tab ${i + 1} receives only its own subscriptions`)
    t.same(got.all, range(1, 300), `tab ${i + 1}: 300 messages, each once, in order`)
    t.same(got[`tab_${i + 1}`], [1, 2, 3])
  }
  t.equal(streams.max, 1, 'still one event stream')

  // The leader goes while 300 more messages flow: another tab leads and resumes from the positions seen.
  const leader = leaders[0]!
  const rest = pages.filter((page) => page !== leader)
  for (let n = 301; n <= 600; n++) {
    await app.rt.publish('all', { n })
    if (n % 10 === 0) await sleep(2)
    if (n === 400) await leader.close()
  }
  await app.rt.publish('all', { n: 601 })
  for (const page of rest) await waitForTab(page, 'rt.got.all?.includes(601)')
  let newLeaders = 0
  for (const page of rest) {
    const state = await tabState(page)
    if (state.isLeader === true) newLeaders++
    t.same(state.got.all, range(1, 601), 'after the takeover: nothing lost, nothing doubled')
  }
  t.equal(newLeaders, 1, 'another tab leads')
  for (let i = 1; i <= TABS; i++) await app.rt.publish(`tab_${i}`, { n: 4 })
  for (const page of rest) await waitForTab(page, 'Object.entries(rt.got).every(([s, o]) => s === "all" || o.length === 4)')
  await sleep(100)
  t.equal(streams.open, 1, 'one event stream again')
})

const leaderOf = async (pages: Page[]): Promise<Page[]> => {
  const leaders = []
  for (const page of pages) if ((await tabState(page)).isLeader === true) leaders.push(page)
  return leaders
}

chromiumTest('without Web Locks (heartbeats over BroadcastChannel): one leader, and a closed leader is replaced', async (t) => {
  const { app, url, streams } = await startRtServer(t)
  const browser = await launch(t)
  const context = await browser.newContext()
  await context.addInitScript(() => { Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined }) })
  const options = { shareAcrossTabs: 'no-locks', heartbeat: 200, leaderTimeout: 1000, backoff: { min: 50, max: 500 } }
  const pages = []
  for (let i = 1; i <= 4; i++) pages.push(await openTab(context, url, ['all'], options, (error) => t.fail(`tab ${i}: ${error}`)))
  for (const page of pages) await waitForTab(page, 'rt.connected === 1')
  t.equal(await pages[0]!.evaluate(() => navigator.locks), undefined, 'no Web Locks in these pages')
  const leaders = await leaderOf(pages)
  t.equal(leaders.length, 1, 'one tab leads')
  for (let n = 1; n <= 200; n++) {
    await app.rt.publish('all', { n })
    if (n % 10 === 0) await sleep(2)
    if (n === 100) await leaders[0]!.close()
  }
  const rest = pages.filter((page) => page !== leaders[0])
  for (const page of rest) await waitForTab(page, 'rt.got.all?.length >= 200')
  for (const page of rest) t.same((await tabState(page)).got.all, range(1, 200), 'nothing lost, nothing doubled')
  t.equal((await leaderOf(rest)).length, 1, 'another tab leads')
  await sleep(100)
  t.equal(streams.open, 1, 'one event stream')
})

chromiumTest('a leader that hangs (its event loop blocked, as a frozen tab) is replaced within leaderTimeout, and follows when it is back', async (t) => {
  const { app, url } = await startRtServer(t)
  const browser = await launch(t)
  const context = await browser.newContext()
  const options = { shareAcrossTabs: 'hang', heartbeat: 200, leaderTimeout: 1000, backoff: { min: 50, max: 500 } }
  const pages = []
  for (let i = 1; i <= 3; i++) pages.push(await openTab(context, url, ['all'], options, (error) => t.fail(`tab ${i}: ${error}`)))
  for (const page of pages) await waitForTab(page, 'rt.connected === 1')
  const [leader] = await leaderOf(pages)
  await leader!.evaluate(() => {
    setTimeout(() => {
      const end = Date.now() + 5000
      while (Date.now() < end);
    }, 0)
  })
  const rest = pages.filter((page) => page !== leader)
  for (let n = 1; n <= 100; n++) await app.rt.publish('all', { n })
  await Promise.race(rest.map((page) => waitForTab(page, 'rt.consumer.isLeader', 10_000)))
  for (const page of rest) await waitForTab(page, 'rt.got.all?.length >= 100')
  t.equal((await leaderOf(rest)).length, 1, 'another tab took the lead')
  await waitForTab(leader!, 'rt.consumer.isLeader === false')
  for (let n = 101; n <= 150; n++) await app.rt.publish('all', { n })
  for (const page of pages) await waitForTab(page, 'rt.got.all?.length >= 150')
  for (const page of pages) t.same((await tabState(page)).got.all, range(1, 150), 'every tab, the thawed one too: each message once')
  t.equal((await leaderOf(pages)).length, 1, 'one leader after the thaw')
})
