// Rewrites the flag table of README.md from the schema (run after `tsc -b`): `pnpm --filter @rt/server readme`.
import { readFileSync, writeFileSync } from 'node:fs'
import { flagTable } from '../dist/help.js'

const file = new URL('../README.md', import.meta.url)
const readme = readFileSync(file, 'utf8')
const start = '<!-- flags:start -->\n'
const end = '<!-- flags:end -->'
const from = readme.indexOf(start)
const to = readme.indexOf(end)
if (from < 0 || to < from) throw new Error('README.md has no <!-- flags:start --> … <!-- flags:end --> section')
writeFileSync(file, readme.slice(0, from + start.length) + flagTable() + readme.slice(to))
