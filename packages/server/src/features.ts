import type { RtCoreOptions } from '@rt/core'

/** Whether the installed @rt/core has JWT identification (`jwtSecret`, `jwtParam`, `jwtForce`), read from its option types. */
type CoreHasJwt = 'jwtSecret' extends keyof RtCoreOptions ? true : false

/**
 * `--jwt_secret`, `--jwt_param` and `--enforce_jwt` need JWT support in
 * @rt/core. The type makes this constant follow core: it must be `false` while
 * core has no `jwtSecret` option and fails to compile (so it gets switched to
 * `true`) once core has one.
 */
export const CORE_SUPPORTS_JWT: CoreHasJwt = false
