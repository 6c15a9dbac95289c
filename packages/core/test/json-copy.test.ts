import t from 'tap'
import { copyJson } from '../src/json-copy.js'

const roundTrip = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

t.test('a plain JSON value is copied deeply, as the JSON round trip gives it', async (t) => {
  const value = { s: 'a"b\n', n: 1.5, z: 0, yes: true, no: false, none: null, list: [1, 'x', null, { deep: [[]] }], empty: {}, gone: undefined, '{"channel":"c"}': { k: 1 } }
  const copy = copyJson(value)
  t.same(copy, roundTrip(value))
  t.equal(JSON.stringify(copy), JSON.stringify(value), 'the same keys in the same order, undefined ones left out')
  t.not(copy, value)
  t.not(copy!.list, value.list, 'nested arrays are copies')
  t.not(copy!.list[3], value.list[3], 'and nested objects')
  t.equal(copyJson('text'), 'text')
  t.equal(copyJson(null), null)
})

t.test('a value the JSON round trip would change is refused, for the caller to make the round trip itself', async (t) => {
  class Point { x = 1 }
  const refused: unknown[] = [
    { when: new Date(0) },
    { point: new Point() },
    { f: () => 1 },
    { n: Number.NaN },
    { n: Infinity },
    { n: -0 },
    [1, undefined],
    { big: 1n },
    { s: Symbol('s') },
    JSON.parse('{"__proto__": {"polluted": true}}'),
    undefined
  ]
  for (const value of refused) t.equal(copyJson(value), undefined, String(JSON.stringify(value, (_key, v: unknown) => typeof v === 'bigint' ? 'bigint' : v)))
  t.equal(({} as { polluted?: boolean }).polluted, undefined, 'no prototype was touched')
})
