import t from 'tap'
import { CORE_LIMIT, bundleSize } from '../scripts/bundle-size.mjs'

t.test('the core bundle stays under 4 KB min+gzip; tab sharing is not in it', async (t) => {
  const core = await bundleSize('index.js')
  const sharedTabs = await bundleSize('shared-tabs.js')
  t.ok(core.gzip < CORE_LIMIT, `core: ${core.gzip} bytes`)
  t.ok(sharedTabs.gzip > core.gzip + 1000, `shared-tabs entry: ${sharedTabs.gzip} bytes, loaded only by the apps that import it`)
})
