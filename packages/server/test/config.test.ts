import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, resolveConfig, type ConfigSources } from '../src/config.js'
import { flagTable, helpText } from '../src/help.js'
import { FLAG_NAMES, NOT_APPLICABLE, ServerConfigSchema, envNames, flagSchema, type ServerConfig } from '../src/schema.js'

function run(sources: ConfigSources): ServerConfig {
  const result = resolveConfig(sources)
  if (result.action !== 'run') throw new Error(`expected a configuration, got ${result.action}`)
  return result.config
}

function failure(sources: ConfigSources): string {
  try {
    resolveConfig(sources)
  } catch (error) {
    if (error instanceof ConfigError) return error.message
    throw error
  }
  throw new Error('expected a ConfigError')
}

t.test('defaults are anycable-go\'s', async (t) => {
  const config = run({})
  t.match(config, {
    host: 'localhost', port: 8080, sse: false, sse_path: '/events', poll: false, poll_path: '/lp', poll_interval: 15,
    poll_flush_interval: 500, poll_max_request_size: 65536, poll_keepalive_timeout: 5, http_broadcast_path: '/_broadcast',
    history_limit: 100, history_ttl: 300, sessions_ttl: 300, jwt_param: 'jid', log_level: 'info', metrics_http: '',
    health_path: '/health', shutdown_timeout: 30, ping_interval: 3, allowed_origins: '', public_streams: false
  })
  t.match(config, { max_longpoll_timeout_seconds: 110, max_event_buffer_size: 250, event_time_to_live_seconds: 0 }, "golongpoll's")
})

t.test('flags: --name value, --name=value, bare booleans, -single-dash, hyphens for underscores', async (t) => {
  const config = run({ argv: ['--port', '9000', '--sse', '--poll=false', '--sse_path=/sse', '-public_streams', '--health-path', '/up', '--history_limit=5'] })
  t.match(config, { port: 9000, sse: true, poll: false, sse_path: '/sse', public_streams: true, health_path: '/up', history_limit: 5 })
  t.equal(run({ argv: ['--sse=1', '--poll=T', '--public_streams=off'] }).poll, true)
  t.equal(run({ argv: ['--sse', '--sse'] }).sse, true, 'a repeated flag is fine')
  t.equal(run({ argv: ['--port=1', '--port=2'] }).port, 2, 'the last one wins')
  t.equal(run({ argv: ['--debug'] }).log_level, 'debug', '--debug is --log_level debug')
})

t.test('environment: ANYCABLE_<FLAG>, plus PORT and REDIS_URL as anycable-go reads them', async (t) => {
  const config = run({ env: { ANYCABLE_SSE: 'true', ANYCABLE_SSE_PATH: '/e', PORT: '7000', REDIS_URL: 'redis://r:1', ANYCABLE_CATEGORY_POLL: 'yes', ANYCABLE_EMPTY: '' } })
  t.match(config, { sse: true, sse_path: '/e', port: 7000, redis_url: 'redis://r:1', category_poll: true })
  t.equal(run({ env: { ANYCABLE_PORT: '7001', PORT: '7000' } }).port, 7001, 'ANYCABLE_PORT before PORT')
  t.equal(run({ env: { ANYCABLE_PORT: '7001' }, argv: ['--port', '7002'] }).port, 7002, 'flags before environment')
  t.equal(run({ env: { ANYCABLE_HOST: '' } }).host, 'localhost', 'an empty variable is unset')
  t.equal(run({ env: { ANYCABLE_RPC_HOST: 'localhost:50051' } }).port, 8080, 'other ANYCABLE_ variables (a shared environment) are ignored')
})

t.test('config file: JSON keyed by flag name, below environment and flags', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rt-server-config-'))
  const file = join(dir, 'rt.json')
  writeFileSync(file, JSON.stringify({ sse: true, port: 7100, 'poll-path': '/poll', history_ttl: '60' }))
  t.match(run({ argv: ['--config_path', file] }), { sse: true, port: 7100, poll_path: '/poll', history_ttl: 60 })
  t.equal(run({ argv: ['--config_path', file], env: { ANYCABLE_PORT: '7200' } }).port, 7200)
  t.equal(run({ env: { ANYCABLE_CONFIG_PATH: file } }).poll_path, '/poll', 'the path may come from the environment')
  t.equal(run({ values: { config_path: file, port: 1 } }).port, 7100, 'a file named in code overrides code')

  writeFileSync(file, JSON.stringify({ rpc_host: 'x' }))
  t.match(failure({ argv: ['--config_path', file] }), /rpc_host in .*rt\.json is not supported by rt-server: rt-server has no RPC/)
  writeFileSync(file, JSON.stringify({ sse: 'maybe' }))
  t.match(failure({ argv: ['--config_path', file] }), /sse in .*rt\.json \(--sse\) must be true or false, got "maybe"/)
  writeFileSync(file, JSON.stringify({ port: 'x' }))
  t.match(failure({ argv: ['--config_path', file] }), /port in .*\(--port\) must be an integer, got "x"/)
  writeFileSync(file, JSON.stringify({ port: 1.5 }))
  t.match(failure({ argv: ['--config_path', file] }), /\(--port\) must be an integer from 0 to 65535, got 1.5/)
  writeFileSync(file, '{ not json')
  t.match(failure({ argv: ['--config_path', file] }), /^--config_path: .* is not JSON/)
  writeFileSync(file, '[1]')
  t.match(failure({ argv: ['--config_path', file] }), /must hold a JSON object keyed by flag name/)
  t.match(failure({ argv: ['--config_path', join(dir, 'missing.json')] }), /^--config_path: cannot read/)
  t.match(failure({ values: { config_path: 42 } }), /config_path in the options \(--config_path\) must be a file path/)
})

t.test('unknown flags and bad values stop with a message naming the flag', async (t) => {
  t.equal(failure({ argv: ['--bogus'] }), 'unknown flag --bogus (rt-server --help lists every flag)')
  t.equal(failure({ argv: ['--http_broadcast_port', '8090'] }), `--http_broadcast_port is not supported by rt-server: ${NOT_APPLICABLE.http_broadcast_port}`)
  t.equal(failure({ argv: ['--port', 'eighty'] }), '--port must be an integer, got "eighty"')
  t.equal(failure({ argv: ['--port=70000'] }), '--port must be an integer from 0 to 65535, got 70000')
  t.equal(failure({ env: { ANYCABLE_POLL_INTERVAL: '0' } }), 'ANYCABLE_POLL_INTERVAL (--poll_interval) must be an integer >= 1, got 0')
  t.equal(failure({ argv: ['--sse=perhaps'] }), '--sse must be true or false, got "perhaps"')
  t.equal(failure({ argv: ['--log_level', 'loud'] }), '--log_level must be one of debug, info, warn, error, fatal, silent, got "loud"')
  t.equal(failure({ argv: ['--broadcast_adapter', 'redis'] }), '--broadcast_adapter must be one of http, got "redis"')
  t.equal(failure({ argv: ['--sse_path', 'events'] }), '--sse_path must be a path starting with "/", got "events"')
  t.equal(failure({ argv: ['--metrics_http', 'metrics'] }), '--metrics_http must be a path starting with "/", or empty, got "metrics"')
  t.equal(failure({ argv: ['--secret'] }), '--secret needs a value (<secret>)')
  t.equal(failure({ argv: ['serve'] }), 'unexpected argument "serve": flags look like --name=value or --name value')
  t.equal(failure({ values: { port: '80' } }), 'port in the options (--port) must be an integer from 0 to 65535, got "80"')
  t.equal(failure({ values: { sse: 'yes' } }), 'sse in the options (--sse) must be true or false, got "yes"')
  t.equal(failure({ values: { nope: 1 } }), 'unknown flag nope in the options (rt-server --help lists every flag)')
  t.equal(failure({ values: { host: 42 } }), 'host in the options (--host) must be a string, got 42')
  t.equal(run({ values: { port: undefined, sse: true } }).port, 8080, 'an option left undefined takes its default')
  for (const name of FLAG_NAMES) {
    const schema = flagSchema(name)
    if (schema.type !== 'boolean') t.type(schema['x-value'], 'string', `--${name} has a value placeholder`)
    if (schema.type === 'integer') t.type((schema as { minimum?: number }).minimum, 'number', `--${name} has a minimum`)
  }
})

t.test('combinations that cannot work stop start-up', async (t) => {
  t.equal(failure({ argv: ['--ssl_cert', 'c.pem'] }), '--ssl_cert needs --ssl_key too')
  t.equal(failure({ argv: ['--ssl_key', 'k.pem'] }), '--ssl_key needs --ssl_cert too')
  t.match(failure({ argv: ['--http2'] }), /^--http2 needs --ssl_cert and --ssl_key/)
  t.match(failure({ argv: ['--file_persistor_file_name', 'j', '--redis_url', 'redis://x'] }), /^--file_persistor_file_name keeps the in-memory broker's history/)
  t.match(failure({ argv: ['--turbo_streams'] }), /^--turbo_streams needs --turbo_streams_secret, --streams_secret or --secret/)
  t.equal(run({ argv: ['--turbo_streams', '--secret', 's'] }).turbo_streams, true)
  t.equal(failure({ argv: ['--sse', '--category_poll', '--category_subscribe_path', '/events'] }),
    '--category_subscribe_path and --sse_path are both "/events": give one of them another path')
  t.equal(failure({ argv: ['--metrics_http', '/health'] }), '--metrics_http and --health_path are both "/health": give one of them another path')
  t.equal(run({ argv: ['--category_subscribe_path', '/events'] }).sse, false, 'a path of a feature that is off collides with nothing')
  t.equal(run({ argv: ['--category_poll', '--category_publish_path=', '--sse', '--sse_path=/a'] }).category_publish_path, '', 'an empty path is off')
})

t.test('--help and --version', async (t) => {
  t.same(resolveConfig({ argv: ['--sse', '--help', '--bogus'] }), { action: 'help' }, 'help wins over what follows')
  t.same(resolveConfig({ argv: ['-h'] }), { action: 'help' })
  t.same(resolveConfig({ argv: ['-v'] }), { action: 'version' })
  t.same(resolveConfig({ argv: ['--version'] }), { action: 'version' })
})

t.test('--help lists every flag with its default and environment variables', async (t) => {
  const help = helpText()
  for (const name of FLAG_NAMES) {
    t.match(help, `  --${name}`, `--${name} is listed`)
    const fallback = flagSchema(name).default
    if (fallback !== '') t.match(help, `default: ${String(fallback)}; env: ${envNames(name).join(', ')}`, `--${name} shows its default`)
  }
  t.match(help, 'env: ANYCABLE_PORT, PORT')
  t.match(help, '--max_event_buffer_size <count>\n      Newest events of a category a subscriber can see (0: 250); also bounded by --history_limit [golongpoll]')
})

t.test('the README table is the one the schema generates', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const start = readme.indexOf('<!-- flags:start -->\n')
  const end = readme.indexOf('<!-- flags:end -->')
  t.ok(start >= 0 && end > start, 'README has the generated section')
  t.equal(readme.slice(start + '<!-- flags:start -->\n'.length, end), flagTable(), 'regenerate with `pnpm --filter @rt/server readme`')
  for (const name of FLAG_NAMES) t.match(flagTable(), `| \`--${name}\` |`)
  t.match(flagTable(), '| `--http_broadcast_port` | | | not applicable |')
  t.equal(Object.keys(ServerConfigSchema.properties).length, FLAG_NAMES.length)
})
