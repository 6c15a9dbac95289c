import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { epochTag, packedEpoch } from '../src/event-id.js'

t.test('epoch <-> tag conversions stay right past the memo limit (more epochs than it keeps)', async (t) => {
  const epochs = Array.from({ length: 2500 }, () => randomBytes(6).toString('base64url'))
  for (const round of [1, 2]) {
    for (const epoch of epochs) {
      const tag = epochTag(epoch)
      if (tag !== Buffer.from(epoch, 'base64url').toString('hex') || packedEpoch(tag) !== epoch) {
        t.fail(`round ${round}: ${epoch} -> ${tag}`)
        return
      }
    }
  }
  t.equal(epochTag('not-packed epoch'), createHash('sha256').update('not-packed epoch').digest('hex').slice(0, 12))
  t.pass('every epoch maps to its tag and back, twice over')
})
