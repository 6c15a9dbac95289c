import { PresenceIdMismatchError, type PresenceLeave, type PresenceSnapshot, type PresenceStore } from '@rt/core'
import type { Connection } from './connection.js'
import { presenceDueKey, presenceKeys } from './keys.js'
import { presenceDueScript, presenceScript } from './presence-script.js'

/** Streams swept per round: a bound on one sweep's work, the rest waits for the next. */
const SWEEP_BATCH = 100

/**
 * Presence sets in Redis, shared by every process of the broker (its
 * `broker.presence`): one script per stream operation, deadlines on Redis's
 * clock, and an index of streams with entries due so that any process's sweep
 * finds them, including those of a process that died.
 */
export class RedisPresenceStore implements PresenceStore {
  private readonly dueKey: string

  constructor(private readonly connection: Connection, private readonly prefix: string) {
    this.dueKey = presenceDueKey(prefix)
  }

  async add(stream: string, sid: string, id: string, info: unknown, ttlMs: number): Promise<boolean> {
    const [joined, deadline] = (await this.run('presence add', stream, ['add', sid, id, info === undefined ? '' : JSON.stringify(info), Math.ceil(ttlMs)])) as [number, string]
    if (joined === -1) throw new PresenceIdMismatchError('session already present under another id')
    await this.schedule(stream, deadline)
    return joined === 1
  }

  async remove(stream: string, sid: string): Promise<string | undefined> {
    const id = (await this.run('presence remove', stream, ['remove', sid])) as string | null
    return id ?? undefined
  }

  async touch(stream: string, sid: string, ttlMs: number): Promise<void> {
    const deadline = (await this.run('presence touch', stream, ['touch', sid, Math.ceil(ttlMs)])) as string
    if (deadline !== '') await this.schedule(stream, deadline)
  }

  async info(stream: string, options: { records: boolean }): Promise<PresenceSnapshot> {
    const flat = (await this.run('presence info', stream, ['info'])) as string[]
    const records = []
    for (let i = 0; i < flat.length; i += 2) {
      const info = flat[i + 1]!
      records.push(info === '' ? { id: flat[i]! } : { id: flat[i]!, info: JSON.parse(info) as unknown })
    }
    return { total: records.length, records: options.records ? records : [] }
  }

  async sweep(): Promise<PresenceLeave[]> {
    const due = (await this.connection.call('presence sweep', () =>
      presenceDueScript.run(this.connection.client, [this.dueKey], ['due', SWEEP_BATCH]))) as string[]
    const leaves: PresenceLeave[] = []
    for (let i = 0; i < due.length; i += 2) {
      const stream = due[i]!
      const [next, ids] = (await this.run('presence sweep', stream, ['sweep'])) as [string, string[]]
      for (const id of ids) leaves.push({ stream, id })
      await this.connection.call('presence sweep', () =>
        presenceDueScript.run(this.connection.client, [this.dueKey], ['reschedule', stream, due[i + 1]!, next]))
    }
    return leaves
  }

  /** The broker closes the connection. */
  async close(): Promise<void> {}

  private schedule(stream: string, deadline: string): Promise<unknown> {
    return this.connection.call('presence schedule', () => presenceDueScript.run(this.connection.client, [this.dueKey], ['schedule', stream, deadline]))
  }

  private run(what: string, stream: string, args: (string | number)[]): Promise<unknown> {
    const keys = presenceKeys(this.prefix, stream)
    return this.connection.call(what, () => presenceScript.run(this.connection.client, [keys.sessions, keys.deadlines, keys.records, keys.counts], args))
  }
}
