import { buildApp } from './app.js'
import { configFromEnv } from './config.js'
import { listen } from './listen.js'

const config = configFromEnv()
const { app, endpoints } = await buildApp(config, { logger: true })
const address = await listen(app, { port: config.port, host: config.host }).catch(async (error: unknown) => {
  await app.close()
  console.error(`example server: ${(error as Error).message}`)
  process.exit(1)
})
for (const endpoint of endpoints) app.log.info(`${endpoint.method} ${address}${endpoint.path}  ${endpoint.what}`)
if (config.generatedKey) app.log.info(`RT_BROADCAST_KEY is unset; this run's broadcast key: ${config.broadcastKey}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void app.close().then(() => process.exit(0))
  })
}
