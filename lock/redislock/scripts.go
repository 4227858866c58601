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
//	P state:<task>   hash of the task's last claim: tick (Unix ms), fence
//	                 (its token), prev (the tick claimed before it) and
//	                 session (the claiming process, for a retry of a lost
//	                 answer; not the owner, so that no key names an instance
//	                 once its locks are gone)

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

// KEYS: state, lock, owner index, fence.
// ARGV: owner, ttl ms, tick ms, policy, key, session.
// Returns {outcome, previous tick or "", token}; outcome 1 claimed, 2
// already claimed, 3 busy.
var claimScript = redis.NewScript(prelude + `
local st = redis.call('HMGET', KEYS[1], 'tick', 'fence', 'prev', 'session')
local last = tonumber(st[1])
local tick = tonumber(ARGV[3])
if last and tick <= last then
  if tick == last and ARGV[6] ~= '' and st[4] == ARGV[6]
      and redis.call('GET', KEYS[2]) == ARGV[1] and redis.call('GET', KEYS[4]) == st[2] then
    -- The same process asks again for the tick it holds: its answer was lost.
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    redis.call('PEXPIRE', KEYS[4], ARGV[2])
    index(KEYS[3], ARGV[5], ARGV[2])
    return {1, st[3] or '', st[2]}
  end
  return {2, st[1]}
end
-- GET, not EXISTS: a key of the wrong type is an error to report, not a holder.
if redis.call('GET', KEYS[2]) and ARGV[4] == 'Forbid' then return {3, st[1] or ''} end
-- The token also follows the server's clock (microseconds), so it keeps
-- rising even when this record is lost with a store that keeps nothing.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fence = string.format('%.0f', math.max((tonumber(st[2]) or 0) + 1, now_us))
redis.call('HSET', KEYS[1], 'tick', ARGV[3], 'fence', fence, 'prev', st[1] or '', 'session', ARGV[6])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[4], fence, 'PX', ARGV[2])
index(KEYS[3], ARGV[5], ARGV[2])
return {1, st[1] or '', fence}
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
