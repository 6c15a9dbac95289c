/**
 * One `@rt/core` per app. Transports take `@rt/core` as a peer dependency, but a
 * version drift or `--legacy-peer-deps` can still give a transport its own nested
 * copy, whose broker, hub and `fastify.rt` typings are not the app's. Each copy
 * brands the `fastify.rt` it decorates; a transport checks the brand against its
 * own copy at `register`, so the failure names both versions instead of
 * surfacing later as a confusing `instanceof` or type error.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import semver from 'semver'

/** What a plugin tells {@link requireRtCore} about itself: the fields of its `package.json` that matter here. */
export interface RtPluginManifest {
  /** The npm name, used in error messages (`@rt/sse`). */
  readonly name: string
  /** `peerDependencies['@rt/core']` is the range of core versions the plugin supports. */
  readonly peerDependencies?: Readonly<Record<string, string>> | undefined
}

/** The brand a copy of `@rt/core` puts on the `fastify.rt` it decorates. */
interface CoreCopy {
  readonly version: string
  /** Where that copy lives on disk, so two copies of one version can be told apart. */
  readonly location: string
}

const BRAND = Symbol.for('@rt/core.copy')

/**
 * Reads a plugin's `package.json` (pass `new URL('../package.json', import.meta.url)`
 * from a module in `src/` or `dist/`).
 */
export function readManifest(packageJson: URL): RtPluginManifest & { readonly version: string } {
  return JSON.parse(readFileSync(packageJson, 'utf8')) as RtPluginManifest & { version: string }
}

/** This copy's version, from its own `package.json`. */
export const RT_CORE_VERSION: string = readManifest(new URL('../package.json', import.meta.url)).version

const thisCopy: CoreCopy = Object.freeze({ version: RT_CORE_VERSION, location: fileURLToPath(new URL('..', import.meta.url)) })

/** Marks `rt` as decorated by this copy of `@rt/core` (non-enumerable, so logging `fastify.rt` is unchanged). */
export function brandRtCore(rt: object): void {
  Object.defineProperty(rt, BRAND, { value: thisCopy, enumerable: false })
}

function describe(copy: CoreCopy): string {
  return `@rt/core ${copy.version} (${copy.location})`
}

/**
 * Called by a transport at `register`: throws unless `fastify.rt` was decorated
 * by the very copy of `@rt/core` the transport imports, at a version within the
 * transport's `peerDependencies['@rt/core']` range. The messages name both versions.
 */
export function requireRtCore(fastify: FastifyInstance, plugin: RtPluginManifest): void {
  const fail = (message: string): never => {
    throw new Error(`${plugin.name}: ${message}`)
  }
  if (!fastify.hasDecorator('rt')) fail(`register @rt/core before ${plugin.name}`)
  const decorated = (fastify.rt as unknown as Record<symbol, CoreCopy | undefined>)[BRAND]
  if (decorated === undefined) {
    fail(`fastify.rt was not decorated by a copy of @rt/core this plugin can check (an @rt/core that predates the check, or ` +
      `something else), and ${plugin.name} loads ${describe(thisCopy)}. Install one @rt/core: it is a peer dependency of ${plugin.name}`)
  }
  if (decorated !== thisCopy) {
    fail(`fastify.rt comes from ${describe(decorated!)}, but ${plugin.name} loads another copy, ${describe(thisCopy)}. ` +
      `Two copies do not share a broker: install one @rt/core (a peer dependency of ${plugin.name}; \`npm ls @rt/core\` lists the copies)`)
  }
  const range = plugin.peerDependencies?.['@rt/core']
  // `workspace:` ranges exist only inside this repository; pnpm replaces them with real ranges when it packs.
  if (range !== undefined && !range.startsWith('workspace:') && !semver.satisfies(RT_CORE_VERSION, range, { includePrerelease: true })) {
    fail(`supports @rt/core ${range}, but the app's @rt/core is ${RT_CORE_VERSION}; install a version of @rt/core in that range`)
  }
}
