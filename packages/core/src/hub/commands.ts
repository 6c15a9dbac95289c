import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { DEFAULT_LIMITS, identifierProblem, parseBoundedJson, type Limits } from '../limits.js'

const StreamPositionSchema = Type.Object({
  offset: Type.Integer({ minimum: 0 }),
  epoch: Type.String()
})

/** The extended protocol's history request: `since` (Unix seconds) and/or per-stream positions. */
export const HistoryRequestSchema = Type.Object({
  since: Type.Optional(Type.Number({ minimum: 0 })),
  streams: Type.Optional(Type.Record(Type.String(), StreamPositionSchema))
})
export type HistoryRequest = Static<typeof HistoryRequestSchema>

const Identifier = Type.String({ minLength: 1 })

/** The extended protocol's presence record: an `id` unique per user in the channel, and any JSON `info`. */
export const PresenceRecordSchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 256 }),
  info: Type.Optional(Type.Unknown())
})
export type PresenceRecord = Static<typeof PresenceRecordSchema>

export const SubscribeCommandSchema = Type.Object({
  command: Type.Literal('subscribe'),
  identifier: Identifier,
  history: Type.Optional(HistoryRequestSchema),
  /** Joins the channel's presence set once the subscription is confirmed. */
  presence: Type.Optional(PresenceRecordSchema)
})
export const UnsubscribeCommandSchema = Type.Object({
  command: Type.Literal('unsubscribe'),
  identifier: Identifier
})
export const MessageCommandSchema = Type.Object({
  command: Type.Literal('message'),
  identifier: Identifier,
  // Action Cable sends the action payload as a JSON string.
  data: Type.String()
})
export const HistoryCommandSchema = Type.Object({
  command: Type.Literal('history'),
  identifier: Identifier,
  history: HistoryRequestSchema
})
export const PongCommandSchema = Type.Object({
  command: Type.Literal('pong')
})
/** Client-to-client message: `data` is any JSON value (not a JSON string, unlike `message`). */
export const WhisperCommandSchema = Type.Object({
  command: Type.Literal('whisper'),
  identifier: Identifier,
  data: Type.Unknown()
})
export const JoinCommandSchema = Type.Object({
  command: Type.Literal('join'),
  identifier: Identifier,
  presence: PresenceRecordSchema
})
export const LeaveCommandSchema = Type.Object({
  command: Type.Literal('leave'),
  identifier: Identifier,
  presence: Type.Optional(Type.Unknown())
})
export const PresenceCommandSchema = Type.Object({
  command: Type.Literal('presence'),
  identifier: Identifier,
  /** `{return_records: false}` answers the total only. */
  data: Type.Optional(Type.Object({ return_records: Type.Optional(Type.Boolean()) }))
})

export type SubscribeCommand = Static<typeof SubscribeCommandSchema>
export type UnsubscribeCommand = Static<typeof UnsubscribeCommandSchema>
export type MessageCommand = Static<typeof MessageCommandSchema>
export type HistoryCommand = Static<typeof HistoryCommandSchema>
export type PongCommand = Static<typeof PongCommandSchema>
export type WhisperCommand = Static<typeof WhisperCommandSchema>
export type JoinCommand = Static<typeof JoinCommandSchema>
export type LeaveCommand = Static<typeof LeaveCommandSchema>
export type PresenceCommand = Static<typeof PresenceCommandSchema>
/** A validated client command. */
export type Command =
  | SubscribeCommand | UnsubscribeCommand | MessageCommand | HistoryCommand | PongCommand
  | WhisperCommand | JoinCommand | LeaveCommand | PresenceCommand

const validators = {
  subscribe: TypeCompiler.Compile(SubscribeCommandSchema),
  unsubscribe: TypeCompiler.Compile(UnsubscribeCommandSchema),
  message: TypeCompiler.Compile(MessageCommandSchema),
  history: TypeCompiler.Compile(HistoryCommandSchema),
  pong: TypeCompiler.Compile(PongCommandSchema),
  whisper: TypeCompiler.Compile(WhisperCommandSchema),
  join: TypeCompiler.Compile(JoinCommandSchema),
  leave: TypeCompiler.Compile(LeaveCommandSchema),
  presence: TypeCompiler.Compile(PresenceCommandSchema)
}

/**
 * A validated command, or why not. `status` 413 says a limit on the amount of
 * input was passed (too many commands or positions), so a transport answering
 * over HTTP can say so; anything else is a 400.
 */
export type ParsedCommand = { ok: true; command: Command } | { ok: false; error: string; status?: 413 }

/** The limits commands are checked against. */
export type CommandLimits = Pick<Limits, 'maxJsonDepth' | 'maxIdentifierLength' | 'maxCursorStreams' | 'maxCommandsPerBody'>

/** Validates a decoded command (compiled TypeBox schemas, one per command), then the limits on identifiers and positions. */
export function validateCommand(value: unknown, limits: CommandLimits = DEFAULT_LIMITS): ParsedCommand {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: 'a command must be a JSON object' }
  }
  const name = (value as { command?: unknown }).command
  if (typeof name !== 'string') return { ok: false, error: 'missing "command"' }
  if (!Object.hasOwn(validators, name)) return { ok: false, error: `unknown command: ${name}` }
  const validator = validators[name as keyof typeof validators]
  if (!validator.Check(value)) {
    const first = validator.Errors(value).First()!
    return { ok: false, error: `invalid ${name} command: ${first.path.slice(1)} ${first.message}` }
  }
  const command = value as Command
  if (command.command === 'pong') return { ok: true, command }
  const problem = identifierProblem(command.identifier, limits)
  if (problem !== undefined) return { ok: false, error: `invalid ${name} command: ${problem}` }
  const streams = command.command === 'subscribe' || command.command === 'history' ? command.history?.streams : undefined
  if (streams !== undefined && Object.keys(streams).length > limits.maxCursorStreams) {
    return { ok: false, error: `invalid ${name} command: history of more than ${limits.maxCursorStreams} streams`, status: 413 }
  }
  return { ok: true, command }
}

/** Parses and validates one JSON line (nested no deeper than `limits.maxJsonDepth`). */
export function parseCommand(line: string, limits: CommandLimits = DEFAULT_LIMITS): ParsedCommand {
  const parsed = parseBoundedJson(line, limits.maxJsonDepth)
  if (!parsed.ok) return parsed
  return validateCommand(parsed.value, limits)
}

/** One line of a JSONL body: its 1-based line number and the parse result. */
export interface JsonlLine {
  line: number
  result: ParsedCommand
}

/**
 * Splits a JSONL body into commands. Blank lines are skipped, `\r\n` is
 * accepted, and the last line may lack its newline (AnyCable's long-polling
 * client sends it that way). A body of more than `limits.maxCommandsPerBody`
 * commands ends with a 413 error line in place of the first command over the
 * limit (nothing after it is parsed).
 */
export function parseJsonl(body: string, limits: CommandLimits = DEFAULT_LIMITS): JsonlLine[] {
  const lines: JsonlLine[] = []
  const raw = body.split('\n')
  for (let i = 0; i < raw.length; i++) {
    const text = raw[i]!.trim()
    if (text === '') continue
    if (lines.length === limits.maxCommandsPerBody) {
      lines.push({ line: i + 1, result: { ok: false, error: `more than ${limits.maxCommandsPerBody} commands in one body`, status: 413 } })
      break
    }
    lines.push({ line: i + 1, result: parseCommand(text, limits) })
  }
  return lines
}
