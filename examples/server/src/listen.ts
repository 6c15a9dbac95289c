import type { FastifyInstance } from 'fastify'

/**
 * `app.listen`, except that a taken port becomes one line naming the port and
 * how to choose another (`PORT`), instead of a raw `EADDRINUSE` stack trace.
 */
export async function listen(app: FastifyInstance, where: { port: number, host: string }): Promise<string> {
  try {
    return await app.listen(where)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
    const message = `port ${where.port} on ${where.host} is already in use; start with another one, e.g. PORT=${where.port + 1} npx -y pnpm@10.34.9 start`
    const explained = new Error(message, { cause: error })
    explained.stack = message
    throw explained
  }
}
