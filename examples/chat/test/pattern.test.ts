import { readFileSync } from 'node:fs'
import t from 'tap'

// Browsers compile an input's `pattern` with the `v` flag (Chromium since 114); an invalid one silently turns
// the page's validation off, so every pattern must compile as `^(?:pattern)$` under `v`.
t.test('every input pattern of the chat page is valid under the v flag', async (t) => {
  const html = readFileSync(new URL('../public/index.html', import.meta.url), 'utf8')
  const patterns = [...html.matchAll(/\spattern="([^"]*)"/g)].map((match) => match[1]!)
  t.ok(patterns.length > 0, 'the page has patterns')
  for (const pattern of patterns) {
    t.doesNotThrow(() => new RegExp(`^(?:${pattern})$`, 'v'), pattern)
    t.ok(new RegExp(`^(?:${pattern})$`, 'v').test('lobby-2_b'), `${pattern} accepts a room name`)
  }
})
