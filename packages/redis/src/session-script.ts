import { LuaScript } from './lua.js'

/**
 * Session operations that must be atomic. KEYS[1] is the session's hash
 * (`lease`, `json`); ARGV[1] the operation, ARGV[2] the TTL in ms.
 * - create: replaces the session, lease 0.
 * - claim (ARGV[3] expected lease, or ''): increments the lease and refreshes
 *   the TTL of an existing session whose lease is the expected one (any, with
 *   ''); answers `[lease, json]`, or nil when there is none or the lease moved.
 * - save (ARGV[3] lease, ARGV[4] json): compare-and-set on the lease; 1 when
 *   written, 0 when a newer claim won or the session is gone. `saved` holds
 *   the lease of the last save.
 * - keep (ARGV[3] limit, then id and JSON pairs): appends kept transient
 *   messages whose id is neither kept (`kept_ids`) nor retired (`retired`),
 *   whatever the lease, drops the oldest past the limit; answers `saved`, or
 *   nil when there is no session. Lists are newline-separated (ids and JSON
 *   text hold no line break).
 * - retire (ARGV[3] limit, then ids): removes those kept messages and
 *   remembers the ids (the last 2 × limit).
 */
export const SESSION_LUA = `
local key, op, ttl = KEYS[1], ARGV[1], ARGV[2]
local function split(text)
  local items = {}
  if text then for item in string.gmatch(text, '[^\\n]+') do items[#items + 1] = item end end
  return items
end
local function index(items, wanted)
  for i = 1, #items do if items[i] == wanted then return i end end
  return nil
end
if op == 'create' then
  redis.call('DEL', key)
  redis.call('HSET', key, 'lease', '0', 'json', ARGV[3], 'saved', '0')
  redis.call('PEXPIRE', key, ttl)
  return 1
elseif op == 'claim' then
  local current = redis.call('HGET', key, 'lease')
  if not current then return false end
  if ARGV[3] ~= '' and current ~= ARGV[3] then return false end
  local lease = redis.call('HINCRBY', key, 'lease', 1)
  redis.call('PEXPIRE', key, ttl)
  return {lease, redis.call('HGET', key, 'json'), redis.call('HGET', key, 'kept') or ''}
elseif op == 'save' then
  if redis.call('HGET', key, 'lease') ~= ARGV[3] then return 0 end
  redis.call('HSET', key, 'json', ARGV[4], 'saved', ARGV[3])
  redis.call('PEXPIRE', key, ttl)
  return 1
elseif op == 'keep' then
  if redis.call('EXISTS', key) == 0 then return false end
  local fields = redis.call('HMGET', key, 'kept_ids', 'kept', 'retired', 'saved')
  local ids, kept, retired = split(fields[1]), split(fields[2]), split(fields[3])
  for i = 4, #ARGV, 2 do
    if not index(ids, ARGV[i]) and not index(retired, ARGV[i]) then
      ids[#ids + 1] = ARGV[i]
      kept[#kept + 1] = ARGV[i + 1]
    end
  end
  local limit = tonumber(ARGV[3])
  while #ids > limit do
    table.remove(ids, 1)
    table.remove(kept, 1)
  end
  redis.call('HSET', key, 'kept_ids', table.concat(ids, '\\n'), 'kept', table.concat(kept, '\\n'))
  return tonumber(fields[4] or '0')
elseif op == 'retire' then
  if redis.call('EXISTS', key) == 0 then return 0 end
  local fields = redis.call('HMGET', key, 'kept_ids', 'kept', 'retired')
  local ids, kept, retired = split(fields[1]), split(fields[2]), split(fields[3])
  for i = 4, #ARGV do
    local at = index(ids, ARGV[i])
    if at then
      table.remove(ids, at)
      table.remove(kept, at)
    end
    if not index(retired, ARGV[i]) then retired[#retired + 1] = ARGV[i] end
  end
  local keepRetired = 2 * tonumber(ARGV[3])
  while #retired > keepRetired do table.remove(retired, 1) end
  redis.call('HSET', key, 'kept_ids', table.concat(ids, '\\n'), 'kept', table.concat(kept, '\\n'), 'retired', table.concat(retired, '\\n'))
  return 1
end
return redis.error_reply('ERR @rt/redis: unknown session operation ' .. tostring(op))
`

export const sessionScript = new LuaScript(SESSION_LUA)
