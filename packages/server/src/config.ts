import { readFileSync } from 'node:fs'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'
import { FLAG_NAMES, NOT_APPLICABLE, ServerConfigSchema, envNames, flagSchema, type FlagName, type ServerConfig } from './schema.js'

/** A configuration problem; the message names the flag (and where its value came from) and is meant for the user. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/** Where a value was read, for error messages: `--port`, `ANYCABLE_PORT (--port)`, `port in ./rt.json (--port)`. */
type Source = string

/** What {@link resolveConfig} reads. Later sources override earlier ones: defaults < file < environment < flags. */
export interface ConfigSources {
  /** Command-line arguments, without `node` and the script (`process.argv.slice(2)`). */
  argv?: readonly string[]
  /** Environment (`process.env`); `ANYCABLE_<FLAG>` and the extra names anycable-go reads (`PORT`, `REDIS_URL`). */
  env?: Readonly<Record<string, string | undefined>>
  /** Options given in code (`startServer(options)`): typed values, keyed by flag name, lowest priority after defaults. */
  values?: Readonly<Record<string, unknown>>
}

/** What the command line asked for besides running the server. */
export type ConfigResult =
  | { action: 'run'; config: ServerConfig }
  | { action: 'help' }
  | { action: 'version' }

const check = TypeCompiler.Compile(ServerConfigSchema)
const BOOLEAN_TRUE = new Set(['true', '1', 't', 'yes', 'y', 'on'])
const BOOLEAN_FALSE = new Set(['false', '0', 'f', 'no', 'n', 'off'])

function isFlagName(name: string): name is FlagName {
  return (FLAG_NAMES as string[]).includes(name)
}

/** anycable-go spells some flags with `-` (`--health-path`, `--max-conn`) and most with `_`: both work. */
function normalize(name: string): string {
  return name.replace(/-/g, '_').toLowerCase()
}

function unknownFlag(name: string, source: Source): never {
  const reason = NOT_APPLICABLE[name]
  if (reason !== undefined) throw new ConfigError(`${source} is not supported by rt-server: ${reason}`)
  throw new ConfigError(`unknown flag ${source} (rt-server --help lists every flag)`)
}

function isBooleanFlag(name: FlagName): boolean {
  return flagSchema(name).type === 'boolean'
}

interface Raw {
  value: unknown
  source: Source
  /** Given in code: taken as typed, never converted from text. */
  typed?: boolean
}

function parseArgv(argv: readonly string[], into: Map<FlagName, Raw>): 'help' | 'version' | undefined {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!
    if (token === '-h' || token === '--help') return 'help'
    if (token === '-v' || token === '--version') return 'version'
    // Go's flag package (anycable-go before 1.4) accepts a single dash too.
    const match = /^--?([A-Za-z][\w-]*)(?:=([\s\S]*))?$/.exec(token)
    if (match === null) throw new ConfigError(`unexpected argument ${JSON.stringify(token)}: flags look like --name=value or --name value`)
    const name = normalize(match[1]!)
    const source = `--${name}`
    if (!isFlagName(name)) unknownFlag(name, source)
    let value: string | undefined = match[2]
    if (value === undefined) {
      if (isBooleanFlag(name)) value = 'true'
      else {
        value = argv[i + 1]
        if (value === undefined) throw new ConfigError(`${source} needs a value (${flagSchema(name)['x-value']})`)
        i++
      }
    }
    into.set(name, { value, source })
  }
  return undefined
}

function readEnv(env: Readonly<Record<string, string | undefined>>, into: Map<FlagName, Raw>): void {
  for (const name of FLAG_NAMES) {
    for (const variable of envNames(name)) {
      const value = env[variable]
      if (value === undefined || value === '') continue
      into.set(name, { value, source: `${variable} (--${name})` })
      break
    }
  }
}

function readValues(values: Readonly<Record<string, unknown>>, into: Map<FlagName, Raw>, where: string, typed: boolean): void {
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue
    const name = normalize(key)
    const source = `${key} in ${where} (--${name})`
    if (!isFlagName(name)) unknownFlag(name, `${key} in ${where}`)
    into.set(name, { value, source, typed })
  }
}

function readFile(path: string, into: Map<FlagName, Raw>): void {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`--config_path: cannot read ${path}: ${(error as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new ConfigError(`--config_path: ${path} is not JSON: ${(error as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`--config_path: ${path} must hold a JSON object keyed by flag name, e.g. {"sse": true, "port": 8080}`)
  }
  readValues(parsed as Record<string, unknown>, into, path, false)
}

/** Turns text (flags, environment, strings in the file) into the flag's type; values given in code are only checked. */
function convert(name: FlagName, raw: Raw): unknown {
  const schema = flagSchema(name)
  const { value, source } = raw
  if (typeof value !== 'string' || raw.typed === true) return value
  if (schema.type === 'boolean') {
    const lowered = value.trim().toLowerCase()
    if (BOOLEAN_TRUE.has(lowered)) return true
    if (BOOLEAN_FALSE.has(lowered)) return false
    throw new ConfigError(`${source} must be true or false, got ${JSON.stringify(value)}`)
  }
  if (schema.type === 'integer') {
    if (!/^\s*-?\d+\s*$/.test(value)) throw new ConfigError(`${source} must be an integer, got ${JSON.stringify(value)}`)
    return Number(value)
  }
  return value
}

function describe(name: FlagName): string {
  const schema = flagSchema(name)
  if (schema.anyOf !== undefined) return `one of ${schema.anyOf.map((option) => option.const).join(', ')}`
  if (schema.const !== undefined) return `one of ${String(schema.const)}`
  if (schema.type === 'integer') {
    // Every integer flag has a minimum (schema.ts).
    const { minimum, maximum } = schema as unknown as { minimum: number; maximum?: number }
    return maximum === undefined ? `an integer >= ${minimum}` : `an integer from ${minimum} to ${maximum}`
  }
  if (schema.type === 'boolean') return 'true or false'
  const expected = (schema as { 'x-expected'?: string })['x-expected']
  if (expected !== undefined) return expected
  const pattern = (schema as { pattern?: string }).pattern
  if (pattern !== undefined) return pattern.startsWith('^(') ? 'a path starting with "/", or empty' : 'a path starting with "/"'
  return 'a string'
}

/**
 * Reads flags, environment, the optional JSON config file (`--config_path`)
 * and options given in code into one validated configuration. Every error is a
 * {@link ConfigError} whose message names the flag.
 */
export function resolveConfig(sources: ConfigSources): ConfigResult {
  const fromCode = new Map<FlagName, Raw>()
  const fromEnv = new Map<FlagName, Raw>()
  const fromArgv = new Map<FlagName, Raw>()
  if (sources.values !== undefined) readValues(sources.values, fromCode, 'the options', true)
  const action = parseArgv(sources.argv ?? [], fromArgv)
  if (action !== undefined) return { action }
  readEnv(sources.env ?? {}, fromEnv)

  const fromFile = new Map<FlagName, Raw>()
  const configPath = fromArgv.get('config_path') ?? fromEnv.get('config_path') ?? fromCode.get('config_path')
  if (configPath !== undefined && configPath.value !== '') {
    if (typeof configPath.value !== 'string') throw new ConfigError(`${configPath.source} must be a file path`)
    readFile(configPath.value, fromFile)
  }

  const merged = new Map<FlagName, Raw>([...fromCode, ...fromFile, ...fromEnv, ...fromArgv])
  const config: Record<string, unknown> = {}
  for (const name of FLAG_NAMES) {
    const raw = merged.get(name)
    config[name] = raw === undefined ? Value.Clone(flagSchema(name).default) : convert(name, raw)
  }
  const first = check.Errors(config).First()
  if (first !== undefined) {
    const name = first.path.split('/')[1] as FlagName
    // Defaults are valid, so the failing value was given by someone.
    const source = merged.get(name)!.source
    throw new ConfigError(`${source} must be ${describe(name)}, got ${JSON.stringify(first.value)}`)
  }
  const resolved = config as ServerConfig
  if (resolved.debug) resolved.log_level = 'debug'
  checkCombinations(resolved, (name) => merged.get(name)?.source ?? `--${name}`)
  return { action: 'run', config: resolved }
}

/** The endpoints each path flag places, when the feature is on: two of them on one path cannot both be served. */
function servedPaths(config: ServerConfig): Array<[FlagName, string]> {
  const paths: Array<[FlagName, string | false]> = [
    ['http_broadcast_path', config.http_broadcast_path],
    ['health_path', config.health_path !== '' && config.health_path],
    ['metrics_http', config.metrics_http !== '' && config.metrics_http],
    ['sse_path', config.sse && config.sse_path],
    ['poll_path', config.poll && config.poll_path],
    ['category_subscribe_path', config.category_poll && config.category_subscribe_path],
    ['category_publish_path', config.category_poll && config.category_publish_path !== '' && config.category_publish_path],
    ['sessions_api_path', config.sessions_api && config.sessions_api_path]
  ]
  return paths.filter((entry): entry is [FlagName, string] => entry[1] !== false)
}

/** Checks what no single flag's schema can: pairs that go together, and paths that collide. */
function checkCombinations(config: ServerConfig, source: (name: FlagName) => string): void {
  if ((config.ssl_cert === '') !== (config.ssl_key === '')) {
    throw new ConfigError(`${source(config.ssl_cert === '' ? 'ssl_key' : 'ssl_cert')} needs ${config.ssl_cert === '' ? '--ssl_cert' : '--ssl_key'} too`)
  }
  if (config.http2 && config.ssl_cert === '') throw new ConfigError(`${source('http2')} needs --ssl_cert and --ssl_key (browsers speak HTTP/2 over TLS only)`)
  if (config.file_persistor_file_name !== '' && config.redis_url !== '') {
    throw new ConfigError(`${source('file_persistor_file_name')} keeps the in-memory broker's history: with --redis_url the history is in Redis already`)
  }
  if (config.turbo_streams && config.turbo_streams_secret === '' && config.streams_secret === '' && config.secret === '') {
    throw new ConfigError(`${source('turbo_streams')} needs --turbo_streams_secret, --streams_secret or --secret to verify Turbo stream names`)
  }
  const seen = new Map<string, FlagName>()
  for (const [name, path] of servedPaths(config)) {
    const other = seen.get(path)
    if (other !== undefined) throw new ConfigError(`${source(name)} and ${source(other)} are both ${JSON.stringify(path)}: give one of them another path`)
    seen.set(path, name)
  }
}
