import { FLAG_NAMES, GROUPS, GROUP_TITLES, NOT_APPLICABLE, envNames, flagSchema, type FlagName } from './schema.js'

function shownDefault(name: FlagName): string {
  const value = flagSchema(name).default
  if (value === '') return ''
  return String(value)
}

function placeholder(name: FlagName): string {
  const schema = flagSchema(name)
  return schema.type === 'boolean' ? '' : ` ${schema['x-value']}`
}

const ORIGIN_NOTE = { anycable: '', golongpoll: ' [golongpoll]', rt: ' [rt]' } as const

/** The text of `rt-server --help`, generated from the schema. */
export function helpText(): string {
  const lines = [
    'rt-server: real-time pub/sub over plain HTTP (SSE, long polling, golongpoll category polling),',
    "configured like anycable-go. Flags override ANYCABLE_<FLAG> environment variables, which override --config_path.",
    '',
    'USAGE',
    '  rt-server [--flag[=value] | --flag value]...',
    ''
  ]
  for (const group of GROUPS) {
    lines.push(`${GROUP_TITLES[group]}:`)
    for (const name of FLAG_NAMES) {
      const schema = flagSchema(name)
      if (schema['x-group'] !== group) continue
      const fallback = shownDefault(name)
      const details = [fallback === '' ? undefined : `default: ${fallback}`, `env: ${envNames(name).join(', ')}`].filter(Boolean).join('; ')
      lines.push(`  --${name}${placeholder(name)}`)
      lines.push(`      ${schema.description}${ORIGIN_NOTE[schema['x-origin']]} (${details})`)
    }
    lines.push('')
  }
  lines.push('  -h, --help      this text')
  lines.push('  -v, --version   the version of @rt/server')
  lines.push('')
  lines.push('[rt] marks rt\'s own flags, [golongpoll] golongpoll\'s option names; the others are anycable-go\'s.')
  return `${lines.join('\n')}\n`
}

const STATUS = { anycable: 'supported', golongpoll: 'rt-only (golongpoll name)', rt: 'rt-only' } as const

function cell(text: string): string {
  return text.replace(/\|/g, '\\|')
}

/** The README's flag table (markdown), generated from the schema and the list of refused anycable-go flags. */
export function flagTable(): string {
  const rows = ['| flag | environment | default | status | what it does |', '|---|---|---|---|---|']
  for (const group of GROUPS) {
    for (const name of FLAG_NAMES) {
      const schema = flagSchema(name)
      if (schema['x-group'] !== group) continue
      const fallback = shownDefault(name)
      rows.push(`| \`--${name}\` | ${envNames(name).map((v) => `\`${v}\``).join(', ')} | ${fallback === '' ? '' : `\`${cell(fallback)}\``} | ${STATUS[schema['x-origin']]} | ${cell(schema.description)} |`)
    }
  }
  for (const [name, reason] of Object.entries(NOT_APPLICABLE)) {
    rows.push(`| \`--${name}\` | | | not applicable | ${cell(reason)} |`)
  }
  return `${rows.join('\n')}\n`
}
