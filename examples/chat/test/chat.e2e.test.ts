import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import t from 'tap'
import type {} from '@rt/core'
import { buildApp } from '@rt/example-server/app'
import { configFromEnv } from '@rt/example-server/config'

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const outputDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-output')

if (!existsSync(executablePath)) {
  // In CI a missing browser is a failure, never a skip (.ci/run installs it).
  t.fail(`Chromium not found at ${executablePath}: apt-get install chromium`)
} else {
  t.test('two pages chat over SSE and forced long polling', async (t) => {
    const { app } = await buildApp({ ...configFromEnv({}), port: 0 })
    const address = await app.listen({ port: 0, host: '127.0.0.1' })
    const browser: Browser = await chromium.launch({
      executablePath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
    t.teardown(async () => {
      await browser.close()
      await app.close()
    })
    const open = async (name: string, transport: 'sse' | 'long-poll', share = false, page?: Page): Promise<Page> => {
      page ??= await browser.newPage()
      page.on('pageerror', (error) => t.fail(`${name}: ${error.message}`))
      const query = new URLSearchParams({ name, room: 'e2e', autojoin: '1', ...(transport === 'long-poll' ? { transport } : {}), ...(share ? { share: '1' } : {}) })
      await page.goto(`${address}/?${query}`)
      await page.waitForFunction(() => !(document.getElementById('text') as HTMLInputElement).disabled)
      return page
    }
    const ann = await open('ann', 'sse')
    const bob = await open('bob', 'long-poll')
    t.equal(await ann.textContent('#transport'), 'sse')
    t.equal(await bob.textContent('#transport'), 'long-poll')

    const say = async (page: Page, text: string): Promise<void> => {
      await page.fill('#text', text)
      await page.click('#send-button')
    }
    const seen = (page: Page, text: string): Promise<unknown> =>
      page.waitForFunction((expected) => [...document.querySelectorAll('#log li')].some((li) => li.textContent?.endsWith(expected)), text)

    await say(ann, 'hello from sse')
    await Promise.all([seen(ann, 'hello from sse'), seen(bob, 'hello from sse')])
    await say(bob, 'hello from long polling')
    await Promise.all([seen(ann, 'hello from long polling'), seen(bob, 'hello from long polling')])
    for (let i = 1; i <= 20; i++) await app.rt.publish('chat_e2e', { user: 'server', text: `burst ${i}` })
    await Promise.all([seen(ann, 'burst 20'), seen(bob, 'burst 20')])
    const count = (page: Page): Promise<number> => page.evaluate(() => [...document.querySelectorAll('#log li')].filter((li) => li.textContent?.includes('burst')).length)
    t.equal(await count(ann), 20, 'SSE page got every message once')
    t.equal(await count(bob), 20, 'long-polling page got every message once')
    t.match(await bob.textContent('#position'), /chat_e2e #22/)

    // ?share=1: two tabs of one browser context share one connection.
    const context = await browser.newContext()
    const cat = await open('cat', 'sse', true, await context.newPage())
    const dan = await open('dan', 'sse', true, await context.newPage())
    await dan.waitForFunction(() => document.getElementById('transport')?.textContent === 'sse (shared by the tabs)')
    await say(dan, 'hello from a shared tab')
    await Promise.all([seen(ann, 'hello from a shared tab'), seen(cat, 'hello from a shared tab'), seen(dan, 'hello from a shared tab')])

    mkdirSync(outputDir, { recursive: true })
    await ann.screenshot({ path: join(outputDir, 'chat-sse.png') })
    await bob.screenshot({ path: join(outputDir, 'chat-long-poll.png') })
  })
}
