import { LuaScript } from './lua.js'

/**
 * Every operation on a stream, as one Lua script: a publish assigns the offset,
 * appends to the history, applies retention and fans the message out in one
 * atomic step, so every node sees one order. One script for all operations also
 * means one SHA: when Redis has lost its script cache, every call gets NOSCRIPT
 * and is re-sent in the order it was made.
 *
 * KEYS[1] meta hash, KEYS[2] history stream (see keys.ts).
 * ARGV[1] operation, ARGV[2] epoch to create when the stream has none,
 * ARGV[3] history limit, ARGV[4] history TTL in ms (-1: none),
 * ARGV[5] key TTL in ms (-1: none), ARGV[6…] the operation's own.
 *
 * On a Redis Cluster the meta hash also records `owner`, the replication id of
 * the master that created the stream's epoch: after a failover the promoted
 * replica has another one, and the stream starts a new epoch there (see below).
 *
 * Entry ids are `<offset>-0`, so reads by position are plain XRANGEs. Timestamps
 * never decrease along a stream (a clock step back reuses the last one), so reads
 * by time and age-based retention can binary-search the history.
 */
export const BROKER_LUA = `
local meta, hist = KEYS[1], KEYS[2]
local op, limit, ttl, keyTtl = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function int(n) return string.format('%d', n) end

-- The meta hash, read in one HMGET and kept up to date here: one call instead of one per field read
-- (a publish read five; each call from Lua costs about as much as a small command).
local cached = {}
do
  local names = {'owner', 'epoch', 'offset', 'ts', 'evicted'}
  local values = redis.call('HMGET', meta, unpack(names))
  for i, name in ipairs(names) do cached[name] = values[i] or nil end
end
local function field(name, default) return tonumber(cached[name] or default) end

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function offsetOf(entry) return tonumber(string.match(entry[1], '^%d+')) end
local function timeOf(entry) return tonumber(entry[2][2]) end
local function head() return redis.call('XRANGE', hist, '-', '+', 'COUNT', 1)[1] end
local function tail() return redis.call('XREVRANGE', hist, '+', '-', 'COUNT', 1)[1] end
local function from(offset) return redis.call('XRANGE', hist, int(offset), '+', 'COUNT', 1)[1] end

-- The first retained entry stamped at or after 'since', or nil.
local function firstSince(since)
  local first = head()
  if first == nil or timeOf(first) >= since then return first end
  local last = tail()
  if timeOf(last) < since then return nil end
  local low, high = offsetOf(first), offsetOf(last)
  while low < high do
    local mid = math.floor((low + high) / 2)
    local entry = from(mid)
    if timeOf(entry) >= since then high = mid else low = offsetOf(entry) + 1 end
  end
  return from(low)
end

-- Retention dropped every entry up to 'through': positions before it cannot be resumed whole.
-- 'set' (optional): more field-value pairs of the meta hash, written in the same HSET.
local function evict(through, set)
  set = set or {}
  if through > field('evicted', '0') then
    cached.evicted = int(through)
    set[#set + 1] = 'evicted'
    set[#set + 1] = cached.evicted
  end
  if #set > 0 then redis.call('HSET', meta, unpack(set)) end
  redis.call('XTRIM', hist, 'MINID', int(through + 1))
end

-- Age retention. 'first': the history's first entry when the caller has just read it (nil: read it here).
local function expire(time, first)
  if ttl < 0 then return end
  local oldest = time - ttl
  first = first or head()
  if first == nil or timeOf(first) >= oldest then return end
  local fresh = firstSince(oldest)
  local stale
  if fresh == nil then stale = tail() else stale = redis.call('XREVRANGE', hist, '(' .. fresh[1], '-', 'COUNT', 1)[1] end
  evict(offsetOf(stale))
end

local function touch()
  if keyTtl > 0 then
    redis.call('PEXPIRE', meta, keyTtl)
    redis.call('PEXPIRE', hist, keyTtl)
  end
end

-- On a Redis Cluster: the replication id of the master running this script. It is new whenever a node
-- becomes master (a replica promoted, a failback, a restart), so it changes whenever another dataset takes
-- the slot over. '' on a single server. (INFO replication, not CLUSTER INFO: that one scans all 16384 slots.)
local function shardOwner()
  if type(redis.pcall('CLUSTER', 'MYID')) ~= 'string' then return '' end
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)') or ''
end

-- Replication is asynchronous: what the previous master acknowledged may never have reached this one, and
-- its offsets would be handed out again to other messages. A stream last written under another owner is
-- forgotten, as if its keys had expired: it starts a new epoch and readers of the old one are told.
local owner = shardOwner()
if (cached.owner or '') ~= owner then
  redis.call('DEL', meta, hist)
  cached = {}
end

-- The stream's epoch, created on first use. A new epoch is a new history: entries of an older one go.
local function epoch()
  if cached.epoch == nil then
    cached.epoch = ARGV[2]
    if owner ~= '' then redis.call('HSET', meta, 'epoch', cached.epoch, 'owner', owner) else redis.call('HSET', meta, 'epoch', cached.epoch) end
    redis.call('DEL', hist)
  end
  return cached.epoch
end

if op == 'publish' then
  -- ARGV[6] channel, ARGV[7] body {"data":…,"meta":…}, ARGV[8] '1' when transient, ARGV[9] PUBLISH or SPUBLISH,
  -- then more (body, transient) pairs: a batch of publishes to this stream, applied in order in this one run.
  -- Returns {offset, epoch, stamp, offset of the 2nd message, …} (transient messages: offset 0).
  local e = epoch()
  local time = now()
  local stamp = math.max(time, field('ts', '0'))
  local last = field('offset', '0')
  local stored = false
  local reply = {0, e, stamp}
  local i = 7
  while ARGV[i] ~= nil do
    local body = ARGV[i]
    local offset = 0
    local after = last
    if ARGV[i + 1] ~= '1' then
      last = last + 1
      offset = last
      after = offset - 1
      stored = true
      if limit ~= 0 then redis.call('XADD', hist, int(offset) .. '-0', 't', int(stamp), 'b', body) end
    end
    redis.call(ARGV[9], ARGV[6], '{"o":' .. int(offset) .. ',"a":' .. int(after) .. ',"e":"' .. e .. '","t":' .. int(stamp) .. ',"b":' .. body .. '}')
    if i == 7 then reply[1] = offset else reply[#reply + 1] = offset end
    i = i + (i == 7 and 3 or 2)
  end
  if stored then
    cached.offset, cached.ts = int(last), int(stamp)
    local set = {'offset', cached.offset, 'ts', cached.ts}
    if limit == 0 then
      evict(last, set)
    else
      local excess = redis.call('XLEN', hist) - limit
      local first = nil
      if excess > 0 then
        -- The entries over the limit and the one after them, which is the history's first once they go.
        local dropped = redis.call('XRANGE', hist, '-', '+', 'COUNT', excess + 1)
        first = dropped[excess + 1]
        evict(offsetOf(dropped[excess]), set)
      else
        redis.call('HSET', meta, unpack(set))
      end
      expire(time, first)
    end
  end
  touch()
  return reply
elseif op == 'position' then
  local e = epoch()
  touch()
  return {field('offset', '0'), e}
elseif op == 'history' then
  -- ARGV[6] 'after' or 'since', ARGV[7] offset or ms, ARGV[8] epoch of the position, ARGV[9] most entries (-1: all)
  local e = cached.epoch
  if not e then return {''} end
  expire(now())
  local last = field('offset', '0')
  local count = tonumber(ARGV[9])
  local start
  local complete = 1
  if ARGV[6] == 'after' then
    local position = tonumber(ARGV[7])
    if ARGV[8] ~= e or position > last then return {e, last, 0, {}} end
    if position < field('evicted', '0') then complete = 0 end
    start = int(math.max(math.floor(position), 0) + 1)
  else
    local first = firstSince(tonumber(ARGV[7]))
    if first == nil then return {e, last, 1, {}} end
    start = first[1]
  end
  if count == 0 then return {e, last, complete, {}} end
  if count < 0 then return {e, last, complete, redis.call('XRANGE', hist, start, '+')} end
  return {e, last, complete, redis.call('XRANGE', hist, start, '+', 'COUNT', count)}
elseif op == 'catchup' then
  -- A live reader's catch-up: ARGV[6] offset, ARGV[7] epoch of its position, ARGV[8] channel, ARGV[9] marker,
  -- ARGV[10] PUBLISH or SPUBLISH.
  -- The marker goes out on the channel at this very point of the stream's order, so the reader knows which
  -- live messages this read already covers. A position from another epoch reads the current one from its start.
  redis.call(ARGV[10], ARGV[8], '{"m":"' .. ARGV[9] .. '"}')
  local e = cached.epoch
  if not e then return {'', {}} end
  expire(now())
  local start = 0
  if ARGV[7] == e then start = tonumber(ARGV[6]) end
  return {e, redis.call('XRANGE', hist, int(start + 1), '+')}
end
return redis.error_reply('ERR @rt/redis: unknown broker operation ' .. tostring(op))
`

export const brokerScript = new LuaScript(BROKER_LUA)
