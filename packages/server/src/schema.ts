import { Type, type Static, type TSchema } from '@sinclair/typebox'

/**
 * Where a flag comes from: `anycable` flags keep anycable-go's name, unit and
 * default; `golongpoll` flags are golongpoll's option names in snake_case;
 * `rt` flags are rt's own (nothing to be compatible with).
 */
export type FlagOrigin = 'anycable' | 'golongpoll' | 'rt'

/** The sections of `--help` and of the README table, in order. */
export const GROUPS = ['server', 'broadcast', 'broker', 'streams', 'jwt', 'sse', 'poll', 'category', 'sessions', 'bridge', 'log'] as const
export type FlagGroup = typeof GROUPS[number]

export const GROUP_TITLES: Record<FlagGroup, string> = {
  server: 'SERVER',
  broadcast: 'BROADCASTING',
  broker: 'BROKER (history, sessions, Redis)',
  streams: 'SIGNED STREAMS',
  jwt: 'JWT',
  sse: 'SERVER-SENT EVENTS',
  poll: 'LONG POLLING',
  category: 'CATEGORY POLLING (golongpoll)',
  sessions: 'SESSION API (actioncable-to-eventsource)',
  bridge: 'ACTION CABLE BRIDGE (a Rails Action Cable server as the source of channels)',
  log: 'LOG AND METRICS'
}

/** Extra keywords every flag's schema carries, read by the parser, `--help` and the README table. */
type FlagKeywords = {
  description: string
  'x-origin': FlagOrigin
  'x-group': FlagGroup
  /** Environment variables read besides `ANYCABLE_<NAME>`, in priority order after it (anycable-go reads `PORT` and `REDIS_URL`). */
  'x-env'?: string[]
  /** Placeholder of the value in `--help` (`<seconds>`, `<path>`). */
  'x-value'?: string
  /** What a valid value is, for the error message of a string flag whose pattern is not a path. */
  'x-expected'?: string
}

function flag<T extends TSchema, K extends FlagKeywords>(schema: (options: K) => T, keywords: K): T {
  return schema(keywords)
}

const bool = (keywords: FlagKeywords): ReturnType<typeof Type.Boolean> => flag((o) => Type.Boolean({ default: false, ...o }), keywords)
const text = (fallback: string, keywords: FlagKeywords & { pattern?: string }): ReturnType<typeof Type.String> =>
  flag((o) => Type.String({ default: fallback, ...o }), keywords)
const int = (fallback: number, keywords: FlagKeywords & { minimum?: number; maximum?: number }): ReturnType<typeof Type.Integer> =>
  flag((o) => Type.Integer({ default: fallback, ...o }), keywords)

/** A path: starts with `/`, no query, fragment or whitespace. */
const PATH = '^/[^?#\\s]*$'
/** A path, or empty for "off". */
const OPTIONAL_PATH = '^(/[^?#\\s]*)?$'

/**
 * Every option of `rt-server`, in one TypeBox schema: it validates flags,
 * environment, the config file and the programmatic options alike, and
 * generates `--help` and the README's flag table. Keys are the flag names.
 * An empty string means "not set" for string options.
 */
export const ServerConfigSchema = Type.Object({
  // --- server
  host: text('localhost', { description: 'Server host (interface to listen on)', 'x-origin': 'anycable', 'x-group': 'server', 'x-value': '<host>' }),
  port: int(8080, { minimum: 0, maximum: 65535, description: 'Server port (0 picks a free one)', 'x-origin': 'anycable', 'x-group': 'server', 'x-env': ['PORT'], 'x-value': '<port>' }),
  allowed_origins: text('', {
    description: 'Comma-separated hosts allowed to read from another origin (example.com, *.example.com, localhost:3000); empty allows any, as anycable-go',
    'x-origin': 'anycable', 'x-group': 'server', 'x-value': '<hosts>'
  }),
  secret: text('', { description: 'Common secret: derives the broadcast key and is the default streams (and JWT) secret', 'x-origin': 'anycable', 'x-group': 'server', 'x-value': '<secret>' }),
  public: bool({ description: '[DANGER ZONE] Public mode: public streams on and broadcasting without a key', 'x-origin': 'anycable', 'x-group': 'server' }),
  norpc: bool({ description: 'Accepted for anycable-go command lines: rt-server is always standalone and never calls an RPC server', 'x-origin': 'anycable', 'x-group': 'server' }),
  health_path: text('/health', { pattern: OPTIONAL_PATH, description: 'HTTP health endpoint path (answers 200 "OK"); empty turns it off', 'x-origin': 'anycable', 'x-group': 'server', 'x-value': '<path>' }),
  shutdown_timeout: int(30, { minimum: 0, description: 'Graceful shutdown timeout in seconds (SIGTERM/SIGINT): then open connections are cut', 'x-origin': 'anycable', 'x-group': 'server', 'x-value': '<seconds>' }),
  ssl_cert: text('', { description: 'TLS certificate file (PEM); with --ssl_key serves HTTPS', 'x-origin': 'anycable', 'x-group': 'server', 'x-value': '<file>' }),
  ssl_key: text('', { description: 'TLS private key file (PEM)', 'x-origin': 'anycable', 'x-group': 'server', 'x-value': '<file>' }),
  http2: bool({ description: 'Serve HTTP/2 (with HTTP/1.1 fallback) over TLS; needs --ssl_cert and --ssl_key', 'x-origin': 'rt', 'x-group': 'server' }),
  config_path: text('', { description: 'JSON file of options keyed by flag name; flags and environment override it', 'x-origin': 'rt', 'x-group': 'server', 'x-value': '<file>' }),

  // --- broadcasting
  broadcast_key: text('', { description: 'Bearer key of the broadcast endpoint (Authorization: Bearer <key>); default: derived from --secret', 'x-origin': 'anycable', 'x-group': 'broadcast', 'x-value': '<key>' }),
  broadcast_adapter: flag((o) => Type.Union([Type.Literal('http')], { default: 'http', ...o }), {
    description: 'Broadcasting adapter; only http (POST to --http_broadcast_path): with --redis_url every node shares the Redis broker anyway',
    'x-origin': 'anycable', 'x-group': 'broadcast', 'x-value': 'http'
  }),
  http_broadcast_path: text('/_broadcast', { pattern: PATH, description: 'HTTP broadcast endpoint path, served on the main port', 'x-origin': 'anycable', 'x-group': 'broadcast', 'x-value': '<path>' }),

  // --- broker
  redis_url: text('', {
    description: 'Redis URL: streams, history and sessions live in Redis, so several rt-server processes act as one; empty keeps everything in memory',
    'x-origin': 'anycable', 'x-group': 'broker', 'x-env': ['REDIS_URL'], 'x-value': '<url>'
  }),
  redis_key_prefix: text('rt:', { description: 'Prefix of every Redis key and channel rt uses (several apps can share one Redis)', 'x-origin': 'rt', 'x-group': 'broker', 'x-value': '<prefix>' }),
  history_limit: int(100, { minimum: 1, description: 'Messages kept per stream', 'x-origin': 'anycable', 'x-group': 'broker', 'x-value': '<count>' }),
  history_ttl: int(300, { minimum: 1, description: 'Seconds a message is kept in a stream\'s history', 'x-origin': 'anycable', 'x-group': 'broker', 'x-value': '<seconds>' }),
  sessions_ttl: int(300, { minimum: 0, description: 'Seconds a disconnected session can be restored by its sid; 0 disables', 'x-origin': 'anycable', 'x-group': 'broker', 'x-value': '<seconds>' }),

  // --- signed streams
  public_streams: bool({ description: 'Allow subscriptions to plain stream names ($pubsub stream_name, SSE ?stream=)', 'x-origin': 'anycable', 'x-group': 'streams' }),
  streams_secret: text('', { description: 'Secret of signed stream names; default: --secret', 'x-origin': 'anycable', 'x-group': 'streams', 'x-value': '<secret>' }),
  turbo_streams: bool({ description: 'Serve Turbo::StreamsChannel (turbo_stream_from signed names, SSE ?turbo_signed_stream_name=)', 'x-origin': 'anycable', 'x-group': 'streams' }),
  turbo_streams_secret: text('', { description: 'Secret of Turbo signed stream names (Turbo.signed_stream_verifier_key); default: the streams secret', 'x-origin': 'anycable', 'x-group': 'streams', 'x-value': '<secret>' }),

  // --- JWT
  jwt_secret: text('', { description: 'Secret that verifies JWT identification tokens (HS256); default: --secret', 'x-origin': 'anycable', 'x-group': 'jwt', 'x-value': '<secret>' }),
  jwt_param: text('jid', { description: 'Query parameter (or X-<PARAM> header) carrying the token', 'x-origin': 'anycable', 'x-group': 'jwt', 'x-value': '<name>' }),
  enforce_jwt: bool({ description: 'Refuse connections without a valid token', 'x-origin': 'anycable', 'x-group': 'jwt' }),

  // --- SSE
  sse: bool({ description: 'Serve Server-Sent Events (EventSource GET, JSONL POST)', 'x-origin': 'anycable', 'x-group': 'sse' }),
  sse_path: text('/events', { pattern: PATH, description: 'SSE endpoint path', 'x-origin': 'anycable', 'x-group': 'sse', 'x-value': '<path>' }),
  ping_interval: int(3, { minimum: 1, description: 'Seconds between pings on SSE streams', 'x-origin': 'anycable', 'x-group': 'sse', 'x-value': '<seconds>' }),

  // --- long polling
  poll: bool({ description: 'Serve AnyCable long polling (@anycable/long-polling clients)', 'x-origin': 'anycable', 'x-group': 'poll' }),
  poll_path: text('/lp', { pattern: PATH, description: 'Long polling endpoint path', 'x-origin': 'anycable', 'x-group': 'poll', 'x-value': '<path>' }),
  poll_interval: int(15, { minimum: 1, description: 'Seconds an idle poll is held before it is answered empty', 'x-origin': 'anycable', 'x-group': 'poll', 'x-value': '<seconds>' }),
  poll_flush_interval: int(500, { minimum: 0, description: 'Milliseconds a poll gathers more messages after the first one', 'x-origin': 'anycable', 'x-group': 'poll', 'x-value': '<ms>' }),
  poll_max_request_size: int(65536, { minimum: 1, description: 'Largest request body in bytes', 'x-origin': 'anycable', 'x-group': 'poll', 'x-value': '<bytes>' }),
  poll_keepalive_timeout: int(5, { minimum: 1, description: 'Seconds a poll session survives without a request', 'x-origin': 'anycable', 'x-group': 'poll', 'x-value': '<seconds>' }),

  // --- category polling (golongpoll)
  category_poll: bool({ description: 'Serve golongpoll category long polling (subscribe, and publish when a broadcast key is set)', 'x-origin': 'rt', 'x-group': 'category' }),
  category_subscribe_path: text('/category/events', { pattern: PATH, description: 'Subscribe path (the wrapper\'s SubscriptionURI)', 'x-origin': 'rt', 'x-group': 'category', 'x-value': '<path>' }),
  category_publish_path: text('/category/publish', { pattern: OPTIONAL_PATH, description: 'Publish path (the wrapper\'s PublishURI), Bearer broadcast key; empty turns it off', 'x-origin': 'rt', 'x-group': 'category', 'x-value': '<path>' }),
  max_longpoll_timeout_seconds: int(110, { minimum: 0, description: 'Largest timeout a subscriber may ask for (0: 110)', 'x-origin': 'golongpoll', 'x-group': 'category', 'x-value': '<seconds>' }),
  max_event_buffer_size: int(250, { minimum: 0, description: 'Newest events of a category a subscriber can see (0: 250); also bounded by --history_limit', 'x-origin': 'golongpoll', 'x-group': 'category', 'x-value': '<count>' }),
  event_time_to_live_seconds: int(0, { minimum: 0, description: 'Seconds an event stays visible (0: forever); also bounded by --history_ttl', 'x-origin': 'golongpoll', 'x-group': 'category', 'x-value': '<seconds>' }),
  delete_event_after_first_retrieval: bool({ description: 'Delete an event once a subscriber received it', 'x-origin': 'golongpoll', 'x-group': 'category' }),
  file_persistor_file_name: text('', { description: 'Keep history in this JSONL file across restarts (reads golongpoll FilePersistor files too); memory broker only', 'x-origin': 'golongpoll', 'x-group': 'category', 'x-value': '<file>' }),
  file_persistor_write_flush_period_seconds: int(0, { minimum: 0, description: 'Seconds between batched writes of the file (0: every event is written before it is delivered)', 'x-origin': 'golongpoll', 'x-group': 'category', 'x-value': '<seconds>' }),

  // --- session API
  sessions_api: bool({ description: 'Serve the actioncable-to-eventsource session API (GET/POST <path>/{session-id})', 'x-origin': 'rt', 'x-group': 'sessions' }),
  sessions_api_path: text('/sessions', { pattern: PATH, description: 'Prefix of the session API', 'x-origin': 'rt', 'x-group': 'sessions', 'x-value': '<path>' }),
  action_cable_url: text('', { pattern: '^(wss?://\\S+)?$', description: 'Serve the channels of this Action Cable server (its ws:// or wss:// cable URL) over every transport; one upstream WebSocket per session', 'x-origin': 'rt', 'x-group': 'bridge', 'x-value': '<url>', 'x-expected': 'a ws:// or wss:// URL, or empty' }),
  action_cable_origin: text('', { description: "Origin of the upstream handshakes (one its allowed_request_origins accepts); default: the upstream's own http(s) origin", 'x-origin': 'rt', 'x-group': 'bridge', 'x-value': '<origin>' }),
  action_cable_forward_headers: text('cookie', { pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~, -]*$', description: 'Comma-separated request headers forwarded to the upstream (an allow-list; Origin is never copied)', 'x-origin': 'rt', 'x-group': 'bridge', 'x-value': '<names>', 'x-expected': 'comma-separated header names' }),

  // --- log and metrics
  log_level: flag((o) => Type.Union(['debug', 'info', 'warn', 'error', 'fatal', 'silent'].map((level) => Type.Literal(level)), { default: 'info', ...o }), {
    description: 'Log level (debug, info, warn, error, fatal; rt adds silent)', 'x-origin': 'anycable', 'x-group': 'log', 'x-value': '<level>'
  }),
  debug: bool({ description: 'Same as --log_level debug', 'x-origin': 'anycable', 'x-group': 'log' }),
  metrics_http: text('', { pattern: OPTIONAL_PATH, description: 'Serve Prometheus metrics at this path; empty: off', 'x-origin': 'anycable', 'x-group': 'log', 'x-value': '<path>' })
}, { additionalProperties: false })

/** Every option with its value (defaults applied). */
export type ServerConfig = Static<typeof ServerConfigSchema>
export type FlagName = keyof ServerConfig

/** The schema of one flag, with the keywords the parser and the help read. */
export type FlagSchema = TSchema & FlagKeywords & { default: unknown; type?: string; const?: unknown; anyOf?: Array<{ const: string }> }

export const FLAG_NAMES = Object.keys(ServerConfigSchema.properties) as FlagName[]

export function flagSchema(name: FlagName): FlagSchema {
  return ServerConfigSchema.properties[name] as unknown as FlagSchema
}

/** The environment variables of a flag, in priority order. */
export function envNames(name: FlagName): string[] {
  return [`ANYCABLE_${name.toUpperCase()}`, ...(flagSchema(name)['x-env'] ?? [])]
}

/**
 * anycable-go flags rt-server refuses, with the reason given at start-up (and
 * in the README): a command line that relies on them would not do what it says.
 */
export const NOT_APPLICABLE: Record<string, string> = {
  path: 'rt serves HTTP transports only: there is no WebSocket endpoint (use --sse or --poll)',
  max_conn: 'not implemented: limit connections at the load balancer',
  rpc_host: 'rt-server has no RPC: channels are $pubsub and Turbo streams; write Fastify code with @rt/core for your own channels',
  headers: 'no RPC to proxy headers to',
  proxy_cookies: 'no RPC to proxy cookies to',
  noauth: 'no RPC authentication to skip: connections are anonymous unless JWT is configured',
  broker: 'the broker follows --redis_url: Redis when it is set, memory otherwise',
  pubsub: 'the broker follows --redis_url: Redis when it is set, memory otherwise',
  http_broadcast_port: 'the broadcast endpoint is served on the main port (--port)',
  http_broadcast_secret: 'deprecated in anycable-go: use --broadcast_key',
  redis_channel: 'rt does not read broadcasts from Redis pub/sub: broadcast over HTTP (/_broadcast) to any node',
  nats_servers: 'NATS is not supported: use --redis_url for several nodes',
  embed_nats: 'NATS is not supported: use --redis_url for several nodes',
  presets: 'rt-server has no presets: pass the flags',
  log_format: 'not implemented: logs are JSON lines (pino)',
  cable_ready_streams: 'CableReady streams are not supported',
  streams_whisper: 'whispers are not supported',
  enable_ws_compression: 'no WebSocket transport',
  max_message_size: 'no WebSocket transport (long polling: --poll_max_request_size)',
  metrics_port: 'metrics are served on the main port (--metrics_http)',
  metrics_host: 'metrics are served on the main port (--metrics_http)',
  disconnect_mode: 'no RPC Disconnect callbacks',
  pong_timeout: 'not implemented'
}
