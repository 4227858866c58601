package redislock

import "github.com/redis/go-redis/v9"

// Each operation is one script: one round trip, atomic in Redis, with time
// read from the server (TIME and PX), never from the client.
//
// Keys (P is the prefix, one hash slot when P carries a hash tag):
//
//	P lock:<key>     string, the owner; PX is the lock's expiry
//	P fence:<key>    string, the fencing token of the claim that set the lock,
//	                 with the same expiry; absent for locks taken by
//	                 TryAcquire. Every write of a lock key keeps the two
//	                 together, so a lease is live only while both match.
//	P owner:<owner>  sorted set of the owner's keys, scored by expiry in ms,
//	                 so ReleaseAll visits only that owner's live locks; it
//	                 expires with the last of them
//	P state:<task>   hash of the task's claim record: tick (the last
//	                 claimed tick, Unix ms), fence (its token), prev (the
//	                 tick decided before it), session (the claiming process,
//	                 for a retry of a lost answer; not the owner, so that no
//	                 key names an instance once its locks are gone) and busy
//	                 (the last tick skipped as busy)
//	P epoch          string, the server's time (Unix ms) from which it holds
//	                 every claim record; set when missing, so a server that
//	                 restarted empty gets a new one at its first call

// prelude is shared by the scripts that index locks.
const prelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- index records member in the owner index idx until now+ttl, and drops the
-- members whose locks have expired, so the index cannot grow without bound.
local function index(idx, member, ttl)
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  redis.call('ZADD', idx, now + tonumber(ttl), member)
  if redis.call('PTTL', idx) < tonumber(ttl) then
    redis.call('PEXPIRE', idx, ttl)
  end
end
`

// KEYS: lock, owner index, fence. ARGV: owner, ttl ms, key.
var acquireScript = redis.NewScript(prelude + `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if cur then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
else
  redis.call('DEL', KEYS[3]) -- a new lock: no claim's lease lives on in it
end
index(KEYS[2], ARGV[3], ARGV[2])
return 1
`)

// KEYS: lock, owner index, fence. ARGV: owner, ttl ms, key.
var renewScript = redis.NewScript(prelude + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
index(KEYS[2], ARGV[3], ARGV[2])
return 1
`)

// KEYS: lock, owner index, fence. ARGV: owner, key.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
`)

// KEYS: owner index. ARGV: owner, lock key prefix, fence key prefix.
//
// The lock keys are built here from the index, so they are not in KEYS; the
// shared hash tag keeps them in the index's slot on Redis Cluster (while that
// slot migrates, Redis refuses the script with an error, never half-runs it).
var releaseAllScript = redis.NewScript(prelude + `
local n = 0
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now_ms(), '+inf')) do
  local k = ARGV[2] .. key
  if redis.call('GET', k) == ARGV[1] then
    redis.call('DEL', k, ARGV[3] .. key)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n
`)

// epochPrelude reads the epoch (KEYS[1] of epochScript, KEYS[5] of
// claimScript), setting it to the server's time when it is missing.
const epochPrelude = `
local function epoch_of(key, now)
  local e = tonumber(redis.call('GET', key))
  if not e then
    e = now
    redis.call('SET', key, string.format('%.0f', e))
  end
  return e
end
`

// KEYS: epoch. Returns {epoch ms, now ms}.
var epochScript = redis.NewScript(prelude + epochPrelude + `
local now = now_ms()
return {epoch_of(KEYS[1], now), now}
`)

// KEYS: state, lock, owner index, fence, epoch.
// ARGV: owner, ttl ms, tick ms, policy, key, session, max skew ms.
// Returns {outcome, previous tick or "", token or "", now, epoch, future
// record or ""}; outcome 1 claimed, 2 already claimed, 3 busy, 4 not yet,
// 5 clock ahead, 6 store lost (the order of lock.Claimer's rules).
var claimScript = redis.NewScript(prelude + epochPrelude + `
local now = now_ms()
local epoch = epoch_of(KEYS[5], now)
local tick = tonumber(ARGV[3])
local horizon = now + tonumber(ARGV[7])
local function answer(code, prev, token, future)
  return {code, prev, token, now, epoch, future}
end
if tick > horizon then return answer(5, '', '', '') end
if tick > now then return answer(4, '', '', '') end
if tick < epoch then return answer(6, '', '', '') end

local st = redis.call('HMGET', KEYS[1], 'tick', 'fence', 'prev', 'session', 'busy')
local last, busy, future = tonumber(st[1]), tonumber(st[5]), ''
if last and last > horizon then
  -- Written while the clock read differently (see lock.Claimer).
  future = st[1]
  last = tonumber(st[3])
  if last and last > horizon then last = nil end
end
if busy and busy > horizon then busy = nil end
local decided = last
if busy and (not decided or busy > decided) then decided = busy end
local previous = decided and string.format('%.0f', decided) or ''

if last and tick <= last then
  if future == '' and tick == last and ARGV[6] ~= '' and st[4] == ARGV[6]
      and redis.call('GET', KEYS[2]) == ARGV[1] and redis.call('GET', KEYS[4]) == st[2] then
    -- The same process asks again for the tick it holds: its answer was lost.
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    redis.call('PEXPIRE', KEYS[4], ARGV[2])
    index(KEYS[3], ARGV[5], ARGV[2])
    return answer(1, st[3] or '', st[2], '')
  end
  return answer(2, previous, '', future)
end
if busy and tick <= busy then return answer(3, previous, '', future) end
-- GET, not EXISTS: a key of the wrong type is an error to report, not a holder.
if redis.call('GET', KEYS[2]) and ARGV[4] == 'Forbid' then
  redis.call('HSET', KEYS[1], 'busy', ARGV[3])
  return answer(3, previous, '', future)
end
-- The token also follows the server's clock (microseconds), so it keeps
-- rising even when this record is lost with a store that keeps nothing.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fence = string.format('%.0f', math.max((tonumber(st[2]) or 0) + 1, now_us))
redis.call('HSET', KEYS[1], 'tick', ARGV[3], 'fence', fence, 'prev', previous, 'session', ARGV[6])
redis.call('HDEL', KEYS[1], 'busy') -- older than this tick: decided by it
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[4], fence, 'PX', ARGV[2])
index(KEYS[3], ARGV[5], ARGV[2])
return answer(1, previous, fence, future)
`)

// leaseCheck is true while KEYS[1] (lock) is held by ARGV[1] (owner) under
// the claim whose token ARGV[3] is in KEYS[2] (fence).
const leaseCheck = `
local function held()
  return redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[3]
end
`

// KEYS: lock, fence, owner index. ARGV: owner, key, token, ttl ms.
var renewLeaseScript = redis.NewScript(prelude + leaseCheck + `
if not held() then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
index(KEYS[3], ARGV[2], ARGV[4])
return 1
`)

// KEYS: lock, fence, owner index. ARGV: owner, key, token.
var releaseLeaseScript = redis.NewScript(leaseCheck + `
if not held() then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
`)
