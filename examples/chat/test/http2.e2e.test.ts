import type {} from '@rt/core'
import { buildApp } from '@rt/example-server/app'
import { configFromEnv } from '@rt/example-server/config'
import { selfSignedCertificate } from '@rt/example-server/self-signed'
import { countStreams, chromiumTest, launch, openTab, range, tabState, waitForTab } from './browser.js'

const TABS = 8

chromiumTest('HTTP/2 with a self-signed certificate: eight tabs without sharing all stream at once, a ninth long-polls', async (t) => {
  const { key, cert } = selfSignedCertificate()
  const { app } = await buildApp({ ...configFromEnv({ TLS_KEY: key, TLS_CERT: cert }), port: 0 })
  const streams = countStreams(app)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const browser = await launch(t)
  const context = await browser.newContext({ ignoreHTTPSErrors: true })
  const pages = []
  for (let i = 1; i <= TABS; i++) {
    pages.push(await openTab(context, url, ['h2_all'], {}, (error) => t.fail(`tab ${i}: ${error}`), { page: '/endpoints', client: '/vendor/rt-client' }))
  }
  for (const page of pages) await waitForTab(page, 'rt.connected === 1')
  t.equal(streams.open, TABS, 'eight event streams open at once (HTTP/1.1 would hold six)')
  // A ninth tab long-polls over the same connection.
  const polling = await openTab(context, url, ['h2_all'], { transports: ['long-poll'] }, (error) => t.fail(`long-polling tab: ${error}`), { page: '/endpoints', client: '/vendor/rt-client' })
  await waitForTab(polling, 'rt.connected === 1')
  pages.push(polling)
  t.equal(await pages[0]!.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol), 'h2')
  for (let n = 1; n <= 50; n++) await app.rt.publish('h2_all', { n })
  for (const page of pages) await waitForTab(page, 'rt.got.h2_all?.length >= 50')
  for (const page of pages) t.same((await tabState(page)).got.h2_all, range(1, 50), 'each message once')
  t.equal((await tabState(polling)).transport, 'long-poll')
})
