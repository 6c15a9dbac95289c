// Typechecks every workspace package's tests, one program per package, so that a package's
// tests see its own sources and the other packages through their published declarations.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const dirs = ['packages', 'examples'].flatMap((group) =>
  readdirSync(join(root, group), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(root, group, d.name)))
dirs.push(join(root, 'bench'))
const scratch = mkdtempSync(join(tmpdir(), 'rt-typecheck-'))
let failed = false
try {
  for (const dir of dirs) {
    if (!existsSync(join(dir, 'test')) || !existsSync(join(dir, 'tsconfig.json'))) continue
    const config = join(scratch, `${dir.replace(/[/\\]/g, '_')}.json`)
    writeFileSync(config, JSON.stringify({
      extends: join(dir, 'tsconfig.json'),
      compilerOptions: { typeRoots: [join(root, 'node_modules/@types')], noEmit: true, composite: false, declaration: false, declarationMap: false, incremental: false, rootDir: dir },
      include: [join(dir, 'src'), join(dir, 'test')],
      references: []
    }))
    try {
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', config], { stdio: 'inherit' })
    } catch {
      failed = true
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
