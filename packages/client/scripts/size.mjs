// Bundle size of @rt/client as an app would ship it: bundled, minified, gzipped. The core entry must stay
// under 4 KB (exit status 1 otherwise); the shared-tabs entry is reported with the core it includes.
import { build } from 'esbuild'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

const CORE_LIMIT = 4096

async function measure(file) {
  const entry = fileURLToPath(new URL(`../dist/${file}`, import.meta.url))
  const result = await build({ entryPoints: [entry], bundle: true, minify: true, format: 'esm', write: false, target: 'es2020' })
  const code = result.outputFiles[0].contents
  return { minified: code.length, gzip: gzipSync(code, { level: 9 }).length }
}

const core = await measure('index.js')
const sharedTabs = await measure('shared-tabs.js')
console.log(JSON.stringify({ ...core, sharedTabs }))
if (core.gzip >= CORE_LIMIT) {
  console.error(`@rt/client: the core bundle is ${core.gzip} bytes gzipped, over the ${CORE_LIMIT} byte budget`)
  process.exitCode = 1
}
