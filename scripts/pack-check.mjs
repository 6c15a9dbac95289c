// Checks what an npm user gets, not what the workspace sees: packs every public package under packages/
// (pnpm pack, which runs each prepack build and turns workspace: ranges into real ones), lints each tarball
// with publint and @arethetypeswrong/cli (esm-only profile), installs the tarballs with npm into a scratch
// project outside the workspace, runs the root README's Quick start there (an EventSource subscriber gets a
// message published through the app's route), typechecks every README's TypeScript and a consumer of every
// package under strict + exactOptionalPropertyTypes + NodeNext with lib ES2022 (no DOM), and checks that a
// transport loaded with a second copy of @rt/core fails at register. Any failure exits non-zero.
//
// Usage: node scripts/pack-check.mjs [--keep]   (--keep leaves the scratch directory for inspection)
import { execFileSync, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'

const root = resolve(import.meta.dirname, '..')
// Versions of the tools the consumer installs: the ones the workspace builds and tests with.
const require = createRequire(join(root, 'packages/core/package.json'))
const keep = process.argv.includes('--keep')
const pnpm = ['-y', 'pnpm@10.34.9']
const scratch = mkdtempSync(join(tmpdir(), 'rt-pack-check-'))
const tarballs = join(scratch, 'tarballs')
const consumer = join(scratch, 'consumer')
mkdirSync(tarballs)
mkdirSync(consumer)
const failures = []

function run(command, args, options = {}) {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024, ...options })
}

/** Runs a step; a failure is recorded with its output and the check goes on, so one run reports everything. */
function step(name, fn) {
  try {
    const result = fn()
    console.log(`ok - ${name}`)
    return result
  } catch (error) {
    failures.push(name)
    console.log(`not ok - ${name}\n${[error.stdout, error.stderr, error.stdout || error.stderr ? '' : error.stack].filter(Boolean).join('\n')}`)
    return undefined
  }
}

/** Every package under packages/ that is not private: a new package is checked as soon as it exists. */
function publicPackages() {
  return readdirSync(join(root, 'packages'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(root, 'packages', entry.name, 'package.json')))
    .map((entry) => {
      const dir = join(root, 'packages', entry.name)
      return { dir, manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }
    })
    .filter(({ manifest }) => manifest.private !== true)
}

// --- pack, list, lint -------------------------------------------------------------------------------
const packages = publicPackages()
const packed = []
for (const { dir, manifest } of packages) {
  const tarball = step(`pack ${manifest.name}`, () => {
    const before = new Set(readdirSync(tarballs))
    run('npx', [...pnpm, 'pack', '--pack-destination', tarballs], { cwd: dir })
    const file = readdirSync(tarballs).find((name) => !before.has(name))
    if (file === undefined) throw new Error('pnpm pack wrote no tarball')
    return join(tarballs, file)
  })
  if (tarball !== undefined) packed.push({ name: manifest.name, manifest, tarball })
}

for (const { name, manifest, tarball } of packed) {
  const files = run('tar', ['-tzf', tarball]).trim().split('\n').map((file) => file.replace(/^package\//, '')).sort()
  console.log(`# ${name}: ${statSync(tarball).size} bytes, ${files.length} files\n#   ${files.join(' ')}`)
  step(`${name}: the tarball holds what its exports, types and licence need`, () => {
    const problems = []
    for (const required of ['package.json', 'README.md', 'LICENSE']) if (!files.includes(required)) problems.push(`no ${required}`)
    for (const file of files) if (file.endsWith('.tsbuildinfo')) problems.push(`ships ${file}`)
    const targets = (value) => typeof value === 'string' ? [value] : Object.values(value ?? {}).flatMap(targets)
    for (const target of targets(manifest.exports).map((path) => path.replace(/^\.\//, ''))) {
      if (!files.includes(target)) problems.push(`exports ./${target}, which is not in the tarball`)
    }
    // Source maps point at ../src/*.ts: the sources must be shipped beside them.
    for (const map of files.filter((file) => file.endsWith('.map'))) {
      const text = run('tar', ['-xzOf', tarball, `package/${map}`])
      const { sources = [], sourcesContent } = JSON.parse(text)
      const base = map.split('/').slice(0, -1)
      for (const [index, source] of sources.entries()) {
        if (sourcesContent?.[index] != null) continue
        const parts = [...base]
        for (const part of source.split('/')) {
          if (part === '..') parts.pop()
          else if (part !== '.') parts.push(part)
        }
        if (!files.includes(parts.join('/'))) problems.push(`${map} points at ${source}, which is not shipped`)
      }
    }
    for (const field of ['license', 'repository', 'homepage', 'bugs', 'keywords']) if (manifest[field] === undefined) problems.push(`package.json has no ${field}`)
    if (manifest.repository?.directory === undefined) problems.push('repository has no directory')
    if (manifest.scripts?.build === undefined || manifest.scripts?.prepack === undefined) problems.push('needs build and prepack scripts')
    const packedManifest = JSON.parse(run('tar', ['-xzOf', tarball, 'package/package.json']))
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
      for (const [dependency, range] of Object.entries(packedManifest[field] ?? {})) if (String(range).startsWith('workspace:')) problems.push(`${field}.${dependency} is ${range}`)
    }
    // A plugin or broker shares the app's @rt/core; only an application (a package with a bin) owns its copy.
    if (name !== '@rt/core' && packedManifest.bin === undefined && packedManifest.dependencies?.['@rt/core'] !== undefined) {
      problems.push('@rt/core must be a peer dependency (with a devDependency for the workspace), not a dependency')
    }
    if (problems.length > 0) throw new Error(problems.join('\n'))
  })
  await (async () => {
    try {
      const { messages, pkg } = await publint({ pack: { tarball: readFileSync(tarball).buffer }, level: 'warning', strict: false })
      const errors = messages.filter((message) => message.type === 'error')
      for (const message of messages) console.log(`#   publint ${message.type}: ${formatMessage(message, pkg)}`)
      if (errors.length > 0) throw new Error(`${errors.length} publint error(s)`)
      console.log(`ok - ${name}: publint`)
    } catch (error) {
      failures.push(`${name}: publint`)
      console.log(`not ok - ${name}: publint\n${error.message}`)
    }
  })()
  step(`${name}: @arethetypeswrong/cli --profile esm-only`, () => run(join(root, 'node_modules/.bin/attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii']))
}

// --- install into a consumer outside the workspace ------------------------------------------------
const version = (dependency) => require(`${dependency}/package.json`).version
writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'rt-consumer', private: true, type: 'module' }, null, 2))
const installed = step('npm install the tarballs into a scratch project', () => run('npm', [
  'install', '--no-audit', '--no-fund', '--loglevel=error',
  ...packed.map(({ tarball }) => tarball),
  `fastify@${version('fastify')}`, 'ioredis@^5', `typescript@${version('typescript')}`, '@types/node@20', 'eventsource@^4'
], { cwd: consumer }))

if (installed !== undefined) {
  step('npm ls: one @rt/core, no missing peer', () => run('npm', ['ls', '--all', '@rt/core'], { cwd: consumer }))

  // Every ```ts block of every README that is a program (starts with an import), plus a consumer of every package.
  const readmes = [join(root, 'README.md'), ...packages.map(({ dir }) => join(dir, 'README.md'))]
  const blocks = readmes.flatMap((readme) => [...readFileSync(readme, 'utf8').matchAll(/^```ts\n([\s\S]*?)^```/gm)]
    .map((match, index) => ({ readme, index, code: match[1] })))
    .filter(({ code }) => /^import /.test(code))
  mkdirSync(join(consumer, 'src'))
  for (const { readme, index, code } of blocks) {
    const name = `${readme.slice(root.length + 1).replace(/[/\\]/g, '_').replace(/\.md$/, '')}_${index}.ts`
    writeFileSync(join(consumer, 'src', name), code)
  }
  writeFileSync(join(consumer, 'src', 'every-package.ts'), [
    ...packed.map(({ name }, index) => `import * as package${index} from '${name}'`),
    `export const loaded = [${packed.map((_, index) => `package${index}`).join(', ')}]`,
    ''
  ].join('\n'))
  writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', lib: ['ES2022'], types: ['node'], module: 'NodeNext', moduleResolution: 'NodeNext',
      strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, skipLibCheck: false,
      outDir: 'dist', rootDir: 'src'
    },
    include: ['src']
  }, null, 2))
  const compiled = step(`typecheck ${blocks.length} README blocks and a consumer of every package (strict, exactOptionalPropertyTypes, NodeNext, lib ES2022)`,
    () => run(process.execPath, [join(consumer, 'node_modules/typescript/bin/tsc'), '-p', consumer], { cwd: consumer }))

  if (compiled !== undefined) await quickStart(join(consumer, 'dist', 'README_0.js'))
  twoCopies()
}

/** Runs the root README's Quick start (its first block) and talks to it as a user would. */
async function quickStart(program) {
  const name = "the root README's Quick start: an EventSource subscriber gets a message published through POST /notes"
  const child = spawn(process.execPath, [program], { cwd: consumer, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const deadline = globalThis.AbortSignal.timeout(20_000)
  try {
    const address = await new Promise((resolve, reject) => {
      const onData = (chunk) => {
        output += chunk
        const match = /Server listening at (http:\/\/[^"]+)/.exec(output)
        if (match !== null) resolve(match[1])
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      child.once('exit', (code) => reject(new Error(`the app exited (${code}) before listening`)))
      deadline.addEventListener('abort', () => reject(new Error('the app did not listen within 20 s')))
    })
    const { EventSource } = await import(join(consumer, 'node_modules/eventsource/dist/index.js'))
    const received = await new Promise((resolve, reject) => {
      const source = new EventSource(`${address}/events?stream=notes`)
      let published = false
      deadline.addEventListener('abort', () => { source.close(); reject(new Error('no message within 20 s')) })
      source.onerror = (event) => { source.close(); reject(new Error(`EventSource error: ${event.message ?? event.type}`)) }
      // Once subscribed, publish through the app's own route; the broadcast arrives as a plain message.
      source.addEventListener('confirm_subscription', async () => {
        if (published) return
        published = true
        const answer = await fetch(`${address}/notes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'hello from the pack check' }) })
        if (answer.status !== 200) reject(new Error(`POST /notes answered ${answer.status}`))
      })
      source.onmessage = (event) => {
        if (JSON.parse(event.data).text !== 'hello from the pack check') return
        source.close()
        resolve({ id: event.lastEventId, data: event.data })
      }
    })
    console.log(`ok - ${name}\n#   ${JSON.stringify(received)}`)
  } catch (error) {
    failures.push(name)
    console.log(`not ok - ${name}\n${error.message}\n${output}`)
  } finally {
    child.kill()
  }
}

/**
 * A second, nested copy of @rt/core (another version) under @rt/sse, then one copy at a version outside @rt/sse's
 * peer range: registering @rt/sse must fail both times, naming both versions.
 */
function twoCopies() {
  step('a transport loaded with a second copy of @rt/core fails at register, naming both versions', () => {
    const nested = join(consumer, 'node_modules/@rt/sse/node_modules/@rt/core')
    cpSync(join(consumer, 'node_modules/@rt/core'), nested, { recursive: true })
    const manifest = JSON.parse(readFileSync(join(nested, 'package.json'), 'utf8'))
    const original = manifest.version
    writeFileSync(join(nested, 'package.json'), JSON.stringify({ ...manifest, version: `${original}-nested` }))
    try {
      writeFileSync(join(consumer, 'two-copies.mjs'), `
        import Fastify from 'fastify'
        import { rtCore } from '@rt/core'
        import { rtSse } from '@rt/sse'
        const app = Fastify()
        await app.register(rtCore)
        try {
          await app.register(rtSse)
          await app.ready()
          console.log('registered')
        } catch (error) {
          console.log(error.message)
        }
        await app.close()
      `)
      const message = run(process.execPath, ['two-copies.mjs'], { cwd: consumer }).trim()
      console.log(`#   ${message}`)
      if (!message.includes(`@rt/core ${original} (`) || !message.includes(`@rt/core ${original}-nested (`)) throw new Error(`expected both versions in: ${message}`)
    } finally {
      rmSync(join(consumer, 'node_modules/@rt/sse/node_modules'), { recursive: true, force: true })
    }
  })
  step("a transport whose peer range excludes the app's one @rt/core fails at register, naming both", () => {
    const file = join(consumer, 'node_modules/@rt/core/package.json')
    const original = readFileSync(file, 'utf8')
    const range = JSON.parse(readFileSync(join(consumer, 'node_modules/@rt/sse/package.json'), 'utf8')).peerDependencies['@rt/core']
    writeFileSync(file, JSON.stringify({ ...JSON.parse(original), version: '99.0.0' }))
    try {
      const message = run(process.execPath, ['two-copies.mjs'], { cwd: consumer }).trim()
      console.log(`#   ${message}`)
      if (message !== `@rt/sse: supports @rt/core ${range}, but the app's @rt/core is 99.0.0; install a version of @rt/core in that range`) {
        throw new Error(`unexpected: ${message}`)
      }
    } finally {
      writeFileSync(file, original)
    }
  })
}

if (keep) console.log(`# scratch directory kept: ${scratch}`)
else rmSync(scratch, { recursive: true, force: true })
console.log(failures.length === 0 ? `# pack check: all ${packed.length} packages ok` : `# pack check: ${failures.length} failure(s):\n#   ${failures.join('\n#   ')}`)
process.exit(failures.length === 0 ? 0 : 1)
