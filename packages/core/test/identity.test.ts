import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import t from 'tap'
import { BrokerUnavailableError } from '../src/broker.js'
import { RT_CORE_VERSION, readManifest, requireRtCore, type RtPluginManifest } from '../src/identity.js'
import { isJournalable } from '../src/journal.js'
import { MemoryBroker } from '../src/memory-broker.js'
import { rtCore } from '../src/plugin.js'

// A second copy of @rt/core at another version, as npm nests one under a transport when versions
// drift: this package's sources copied beside a package.json of their own are other module instances
// (outside the package, so that coverage counts only the first copy; dependencies are shared).
type Core = typeof import('../src/index.js')
const SECOND_VERSION = '0.0.1-second-copy'
const secondCopyDir = mkdtempSync(join(tmpdir(), 'rt-core-second-copy-'))
t.teardown(() => rmSync(secondCopyDir, { recursive: true, force: true }))
cpSync(new URL('../src', import.meta.url), join(secondCopyDir, 'src'), { recursive: true })
symlinkSync(new URL('../node_modules', import.meta.url), join(secondCopyDir, 'node_modules'))
writeFileSync(join(secondCopyDir, 'package.json'), JSON.stringify({ name: '@rt/core', version: SECOND_VERSION, type: 'module' }))
const otherCopy = async (): Promise<Core> => await import(pathToFileURL(join(secondCopyDir, 'src/index.ts')).href) as Core

const manifest: RtPluginManifest = { name: '@rt/test-transport', peerDependencies: { '@rt/core': `^${RT_CORE_VERSION}` } }

/** A transport plugin that checks core with the given copy's `requireRtCore`. */
function transport(check: typeof requireRtCore, plugin: RtPluginManifest = manifest) {
  return fp(async (fastify: FastifyInstance) => check(fastify, plugin), { name: plugin.name, dependencies: ['@rt/core'] })
}

async function registerError(core: Core['rtCore'], check: typeof requireRtCore, plugin?: RtPluginManifest): Promise<Error | undefined> {
  const app = Fastify()
  try {
    await app.register(core)
    await app.register(transport(check, plugin))
    await app.ready()
    return undefined
  } catch (error) {
    return error as Error
  } finally {
    await app.close()
  }
}

t.test('a transport on the copy of @rt/core that decorated fastify.rt registers', async (t) => {
  t.equal(await registerError(rtCore, requireRtCore), undefined)
})

t.test('a transport whose @rt/core is another copy fails at register, naming both copies', async (t) => {
  const second = await otherCopy()
  t.not(second.rtCore, rtCore, 'the second import is another module instance')
  for (const [app, check] of [[rtCore, second.requireRtCore], [second.rtCore, requireRtCore]] as const) {
    const error = await registerError(app, check)
    t.match(error?.message, /^@rt\/test-transport: fastify\.rt comes from @rt\/core \S+ \(.+\), but @rt\/test-transport loads another copy, @rt\/core \S+ \(.+\)\. .*install one @rt\/core/)
    const [decorator, loaded] = app === rtCore ? [RT_CORE_VERSION, SECOND_VERSION] : [SECOND_VERSION, RT_CORE_VERSION]
    t.ok(error?.message.includes(`comes from @rt/core ${decorator} (`) && error.message.includes(`another copy, @rt/core ${loaded} (`), 'names both versions')
  }
  t.equal(second.RT_CORE_VERSION, SECOND_VERSION)
})

t.test('a transport that supports another range of @rt/core versions fails at register, naming both', async (t) => {
  const error = await registerError(rtCore, requireRtCore, { name: '@rt/test-transport', peerDependencies: { '@rt/core': '^99.0.0' } })
  t.equal(error?.message, `@rt/test-transport: supports @rt/core ^99.0.0, but the app's @rt/core is ${RT_CORE_VERSION}; install a version of @rt/core in that range`)
  t.equal(await registerError(rtCore, requireRtCore, { name: '@rt/test-transport', peerDependencies: { '@rt/core': 'workspace:^' } }), undefined,
    'workspace ranges (replaced when packed) are not checked')
  t.equal(await registerError(rtCore, requireRtCore, { name: '@rt/test-transport' }), undefined, 'no declared range: any version')
})

t.test('fastify.rt from something else than a checkable @rt/core fails clearly', async (t) => {
  const app = Fastify()
  app.decorate('rt', { broker: new MemoryBroker() } as never)
  t.throws(() => requireRtCore(app, manifest), /^@rt\/test-transport: fastify\.rt was not decorated by a copy of @rt\/core this plugin can check/)
  t.throws(() => requireRtCore(Fastify(), manifest), { message: '@rt/test-transport: register @rt/core before @rt/test-transport' })
})

t.test('readManifest reads a package.json; RT_CORE_VERSION is this package version', async (t) => {
  const own = readManifest(new URL('../package.json', import.meta.url))
  t.equal(own.name, '@rt/core')
  t.equal(own.version, RT_CORE_VERSION)
})

t.test('BrokerUnavailableError and MemoryBroker are recognised across copies', async (t) => {
  const second = await otherCopy()
  t.ok(new second.BrokerUnavailableError('down') instanceof BrokerUnavailableError)
  t.ok(new BrokerUnavailableError('down') instanceof second.BrokerUnavailableError)
  t.notOk(new Error('down') instanceof BrokerUnavailableError)
  t.notOk(('BrokerUnavailableError' as unknown) instanceof BrokerUnavailableError, 'not an object')
  class Outage extends BrokerUnavailableError {}
  t.ok(new Outage('x') instanceof Outage, 'subclasses keep the prototype check')
  t.notOk(new BrokerUnavailableError('x') instanceof Outage)

  const foreign = new second.MemoryBroker()
  t.notOk(foreign instanceof MemoryBroker, 'instanceof refuses the other copy')
  t.ok(isJournalable(foreign), 'the duck-typed check accepts it')
  t.ok(isJournalable(new MemoryBroker()))
  t.notOk(isJournalable({ publish: async () => undefined } as never))
  await foreign.close()
})
