// Bundle size of @rt/client as an app would ship it: bundled, minified, gzipped.
import { build } from 'esbuild'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const result = await build({ entryPoints: [entry], bundle: true, minify: true, format: 'esm', write: false, target: 'es2020' })
const code = result.outputFiles[0].contents
const gzip = gzipSync(code, { level: 9 }).length
console.log(JSON.stringify({ minified: code.length, gzip }))
