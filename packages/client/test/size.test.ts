import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

t.test('the core bundle stays under 4 KB min+gzip; tab sharing is not in it', async (t) => {
  const script = fileURLToPath(new URL('../scripts/size.mjs', import.meta.url))
  const size = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8' })) as { gzip: number; sharedTabs: { gzip: number } }
  t.ok(size.gzip < 4096, `core: ${size.gzip} bytes`)
  t.ok(size.sharedTabs.gzip > size.gzip + 1000, `shared-tabs entry: ${size.sharedTabs.gzip} bytes, loaded only by the apps that import it`)
})
