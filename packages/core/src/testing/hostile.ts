/**
 * Hostile inputs for fuzz tests, shared by every rt package: deep JSON, huge
 * names, long bodies, many positions. Deterministic (seeded), so a failure
 * replays.
 */

/** A small seeded PRNG (mulberry32): the same seed gives the same inputs. */
export function random(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** JSON text nested `depth` levels, as arrays, objects, or both alternating. */
export function deepJson(depth: number, shape: 'array' | 'object' | 'mixed' = 'array'): string {
  let open = ''
  let close = ''
  for (let i = 0; i < depth; i++) {
    const array = shape === 'array' || (shape === 'mixed' && i % 2 === 0)
    open += array ? '[' : '{"k":'
    close = (array ? ']' : '}') + close
  }
  return `${open}0${close}`
}

/** A name of `length` characters (a stream, category or identifier param). */
export const hugeName = (length: number): string => 'n'.repeat(length)

/** A multi-stream SSE cursor (`Last-Event-ID`) naming `streams` streams. */
export const manyStreamCursor = (streams: number): string => `~${Array.from({ length: streams }, (_, i) => `1/E/s${i}`).join(',')}`

/** `count` copies of `line`, one per line: a JSONL body of many commands. */
export const manyLines = (line: string, count: number): string => Array.from({ length: count }, () => line).join('\n')

/**
 * JSON texts of every hostile shape: nested past any limit (arrays, objects,
 * mixed, inside strings), unbalanced, long strings, odd scalars. A fuzz test
 * puts each into every JSON field of an endpoint.
 */
export function hostileJsonTexts(seed = 1, count = 24): string[] {
  const next = random(seed)
  const fixed = [
    deepJson(101), deepJson(5000), deepJson(5000, 'object'), deepJson(20_000, 'mixed'),
    `"${'['.repeat(10_000)}"`, '['.repeat(10_000), ']'.repeat(100), '{"a":'.repeat(3000),
    JSON.stringify('x'.repeat(100_000)), '1e999', '-0', 'null', '"\\u0000\\ud800"', '{"__proto__":{"polluted":1}}'
  ]
  const generated: string[] = []
  for (let i = 0; i < count; i++) {
    const depth = Math.floor(next() * 3000)
    const shapes = ['array', 'object', 'mixed'] as const
    generated.push(deepJson(depth, shapes[Math.floor(next() * shapes.length)]!))
  }
  return [...fixed, ...generated]
}
