// Bundle size of @rt/client as an app would ship it. The core entry must stay under 4 KB (exit status 1
// otherwise); the shared-tabs entry is reported with the core it includes.
import { CORE_LIMIT, bundleSize } from './bundle-size.mjs'

const core = await bundleSize('index.js')
const sharedTabs = await bundleSize('shared-tabs.js')
console.log(JSON.stringify({ ...core, sharedTabs }))
if (core.gzip >= CORE_LIMIT) {
  console.error(`@rt/client: the core bundle is ${core.gzip} bytes gzipped, over the ${CORE_LIMIT} byte budget`)
  process.exitCode = 1
}
