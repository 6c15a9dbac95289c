// The size of an entry point as an app ships it: bundled with esbuild, minified, gzipped at level 9.
import { build } from 'esbuild'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

/** The core entry's budget in bytes, min+gzip. */
export const CORE_LIMIT = 4096

export async function bundleSize(file) {
  const entry = fileURLToPath(new URL(`../dist/${file}`, import.meta.url))
  const result = await build({ entryPoints: [entry], bundle: true, minify: true, format: 'esm', write: false, target: 'es2020' })
  const code = result.outputFiles[0].contents
  return { minified: code.length, gzip: gzipSync(code, { level: 9 }).length }
}
