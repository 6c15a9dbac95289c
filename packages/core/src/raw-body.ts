import type { FastifyInstance } from 'fastify'

/**
 * Makes every body in this (encapsulated) Fastify context arrive as a string,
 * whatever its Content-Type or none: AnyCable and golongpoll read the raw body,
 * and browsers' fetch sends text/plain while curl sends form encoding.
 * Bodies over `bodyLimit` bytes are refused with 413 before they are buffered whole.
 */
export function acceptAnyBodyAsText(instance: FastifyInstance, bodyLimit: number): void {
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', { parseAs: 'string', bodyLimit }, (_request, body, done) => {
    done(null, body)
  })
}
