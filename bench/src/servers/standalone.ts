/**
 * `node dist/servers/standalone.js <target> <options JSON>` with `PORT`: a
 * server under test as its own process, published to over HTTP (see
 * `external.ts`): `rt-category` (`@rt/category-poll` defaults plus its
 * publish endpoint) or `ceiling-category` (the bare node:http ceiling).
 */
import { rtCategoryPoll } from '@rt/category-poll'
import { ceilingCategory } from './ceilings.js'
import { PUBLISH_KEY } from './external.js'
import { rtApp } from './rt.js'
import type { TargetOptions } from './target.js'

const [name = '', json = '{}'] = process.argv.slice(2)
const options: TargetOptions = { ...(JSON.parse(json) as TargetOptions), port: Number(process.env.PORT) }
let close: () => Promise<void>
if (name === 'rt-category') {
  const app = await rtApp(options)
  await app.register(rtCategoryPoll, { enablePublish: true, publishKey: PUBLISH_KEY })
  await app.listen({ host: '127.0.0.1', port: options.port ?? 0, backlog: 8192 })
  close = async () => {
    app.server.closeAllConnections()
    await app.close()
  }
} else if (name === 'ceiling-category') {
  close = (await ceilingCategory(options)).close
} else {
  throw new Error(`standalone: unknown target ${name}`)
}
const stop = (): void => {
  void close().then(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
// Never outlive a bench run.
setTimeout(() => process.exit(2), 600_000).unref()
