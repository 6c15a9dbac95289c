import { LuaScript } from './lua.js'

/**
 * Session operations that must be atomic. KEYS[1] is the session's hash
 * (`lease`, `json`); ARGV[1] the operation, ARGV[2] the TTL in ms.
 * - create: replaces the session, lease 0.
 * - claim (ARGV[3] expected lease, or ''): increments the lease and refreshes
 *   the TTL of an existing session whose lease is the expected one (any, with
 *   ''); answers `[lease, json]`, or nil when there is none or the lease moved.
 * - save (ARGV[3] lease, ARGV[4] json): compare-and-set on the lease; 1 when
 *   written, 0 when a newer claim won or the session is gone.
 */
export const SESSION_LUA = `
local key, op, ttl = KEYS[1], ARGV[1], ARGV[2]
if op == 'create' then
  redis.call('DEL', key)
  redis.call('HSET', key, 'lease', '0', 'json', ARGV[3])
  redis.call('PEXPIRE', key, ttl)
  return 1
elseif op == 'claim' then
  local current = redis.call('HGET', key, 'lease')
  if not current then return false end
  if ARGV[3] ~= '' and current ~= ARGV[3] then return false end
  local lease = redis.call('HINCRBY', key, 'lease', 1)
  redis.call('PEXPIRE', key, ttl)
  return {lease, redis.call('HGET', key, 'json')}
elseif op == 'save' then
  if redis.call('HGET', key, 'lease') ~= ARGV[3] then return 0 end
  redis.call('HSET', key, 'json', ARGV[4])
  redis.call('PEXPIRE', key, ttl)
  return 1
end
return redis.error_reply('ERR @rt/redis: unknown session operation ' .. tostring(op))
`

export const sessionScript = new LuaScript(SESSION_LUA)
