import { LuaScript } from './lua.js'

const NOW = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

/**
 * The operations on one stream's presence set, atomic per stream, on Redis's
 * clock (every process shares it). KEYS: sessions, deadlines, records, counts
 * (keys.ts). ARGV[1] the operation. Keys expire `3 × TTL` after the last
 * write, so a set nobody sweeps (every process gone) does not stay forever.
 * Removing a session that empties its record returns the id to exactly one
 * caller: that caller announces the leave.
 */
export const presenceScript = new LuaScript(`
local S, D, R, C = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op = ARGV[1]
${NOW}
local function drop(sid)
  local id = redis.call('HGET', S, sid)
  if not id then return false end
  redis.call('HDEL', S, sid)
  redis.call('ZREM', D, sid)
  if redis.call('HINCRBY', C, id, -1) <= 0 then
    redis.call('HDEL', C, id)
    redis.call('HDEL', R, id)
    return id
  end
  return false
end
local function keep(ttl)
  for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ttl * 3) end
end
local function nextDue()
  local first = redis.call('ZRANGE', D, 0, 0, 'WITHSCORES')
  return first[2] or ''
end

if op == 'add' then
  local sid, id, info, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
  local previous = redis.call('HGET', S, sid)
  if previous and previous ~= id then return {-1, ''} end
  local deadline = now() + ttl
  redis.call('ZADD', D, deadline, sid)
  redis.call('HSET', R, id, info)
  local joined = 0
  if not previous then
    redis.call('HSET', S, sid, id)
    if redis.call('HINCRBY', C, id, 1) == 1 then joined = 1 end
  end
  keep(ttl)
  return {joined, tostring(deadline)}
elseif op == 'remove' then
  return drop(ARGV[2])
elseif op == 'touch' then
  local ttl = tonumber(ARGV[3])
  if not redis.call('ZSCORE', D, ARGV[2]) then return '' end
  local deadline = now() + ttl
  redis.call('ZADD', D, 'XX', deadline, ARGV[2])
  keep(ttl)
  return tostring(deadline)
elseif op == 'info' then
  return redis.call('HGETALL', R)
else -- sweep
  local left = {}
  for _, sid in ipairs(redis.call('ZRANGEBYSCORE', D, '-inf', now())) do
    local id = drop(sid)
    if id then table.insert(left, id) end
  end
  return {nextDue(), left}
end
`)

/**
 * The index of streams with entries due, on its own key (Cluster: another
 * slot), kept conservative: a stream is listed no later than its earliest
 * deadline, and only the sweep that read a score may replace or remove it.
 * KEYS[1] the index. ARGV[1] `schedule` (stream, deadline), `due` (limit) or
 * `reschedule` (stream, score read, next deadline or "").
 */
export const presenceDueScript = new LuaScript(`
local G, op = KEYS[1], ARGV[1]
${NOW}
if op == 'schedule' then
  local score = redis.call('ZSCORE', G, ARGV[2])
  local deadline = tonumber(ARGV[3])
  if (not score) or tonumber(score) <= now() or deadline < tonumber(score) then redis.call('ZADD', G, deadline, ARGV[2]) end
  return 1
elseif op == 'due' then
  return redis.call('ZRANGEBYSCORE', G, '-inf', now(), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
else -- reschedule
  local score = redis.call('ZSCORE', G, ARGV[2])
  if score and tonumber(score) == tonumber(ARGV[3]) then
    if ARGV[4] == '' then redis.call('ZREM', G, ARGV[2]) else redis.call('ZADD', G, ARGV[4], ARGV[2]) end
  end
  return 1
end
`)
