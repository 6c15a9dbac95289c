/** What {@link copyJson} answers for a value JSON would not give back as it is. */
const NOT_PLAIN = Symbol('not plain JSON')

/**
 * A deep copy of a plain JSON value — what `JSON.parse(JSON.stringify(value))`
 * gives — or `undefined` when the value holds anything that round trip would
 * change (a class instance or Date, a function, a non-finite number or -0,
 * `undefined` in an array, a `__proto__` key): then the caller makes the round
 * trip itself, so the copy is always exactly JSON's. Properties that are
 * `undefined` are left out, as JSON leaves them out.
 *
 * It exists for the memory session store, which copies a state on every save
 * and every read: for a long-poll session's state (~460 bytes) this copy takes
 * ~2.0 µs against ~5.5 µs for `JSON.stringify` and ~6.5 µs for `JSON.parse`
 * on the bench VM.
 */
export function copyJson<T>(value: T): T | undefined {
  const copied = copy(value)
  return copied === NOT_PLAIN ? undefined : copied as T
}

function copy(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0) ? value : NOT_PLAIN
    case 'object':
      if (value === null) return null
      return Array.isArray(value) ? copyArray(value) : copyObject(value as Record<string, unknown>)
    default:
      return NOT_PLAIN
  }
}

function copyArray(value: readonly unknown[]): unknown {
  const out = new Array<unknown>(value.length)
  for (let i = 0; i < value.length; i++) {
    const item = value[i] === undefined ? NOT_PLAIN : copy(value[i])
    if (item === NOT_PLAIN) return NOT_PLAIN
    out[i] = item
  }
  return out
}

function copyObject(value: Record<string, unknown>): unknown {
  if (Object.getPrototypeOf(value) !== Object.prototype) return NOT_PLAIN
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value)) {
    const item = value[key]
    if (item === undefined) continue
    // Assigned, `__proto__` would set the copy's prototype rather than make a property of that name.
    if (key === '__proto__') return NOT_PLAIN
    const copied = copy(item)
    if (copied === NOT_PLAIN) return NOT_PLAIN
    out[key] = copied
  }
  return out
}
