import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import t from 'tap'
import { listen } from '../src/listen.js'

t.test('a taken port says which port and how to pick another, without a stack trace', async (t) => {
  const squatter = createServer()
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve))
  t.teardown(() => squatter.close())
  const port = (squatter.address() as AddressInfo).port
  const app = Fastify()
  t.teardown(() => app.close())
  const error = await listen(app, { port, host: '127.0.0.1' }).then(() => undefined, (e: unknown) => e as Error)
  t.equal(error?.message, `port ${port} on 127.0.0.1 is already in use; start with another one, e.g. PORT=${port + 1} npx -y pnpm@10.34.9 start`)
  t.equal(error?.stack, error?.message, 'nothing but the message is printed')
})

t.test('other listen errors pass through; a free port answers its address', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(listen(app, { port: 0, host: '192.0.2.1' }), { code: 'EADDRNOTAVAIL' }) // TEST-NET-1: no interface has it
  const free = Fastify()
  t.teardown(() => free.close())
  t.match(await listen(free, { port: 0, host: '127.0.0.1' }), /^http:\/\/127\.0\.0\.1:\d+$/)
})
