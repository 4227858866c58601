package redislock

import "github.com/redis/go-redis/v9"

// Each operation is one script: one round trip, atomic in Redis, with time
// read from the server (TIME and PX), never from the client.
//
// Keys (P is the prefix, one hash slot when P carries a hash tag):
//
//	P lock:<key>     string, the owner; PX is the lock's expiry
//	P owner:<owner>  sorted set of the owner's keys, scored by expiry in ms,
//	                 so ReleaseAll visits only that owner's live locks; it
//	                 expires with the last of them
//	P state:<task>   hash: tick (last claimed, Unix ms), fence (last token),
//	                 held (token of the claim holding the task-wide lock)

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

// KEYS: lock, owner index. ARGV: owner, ttl ms, key.
var acquireScript = redis.NewScript(prelude + `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
index(KEYS[2], ARGV[3], ARGV[2])
return 1
`)

// KEYS: lock, owner index. ARGV: owner, ttl ms, key.
var renewScript = redis.NewScript(prelude + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
index(KEYS[2], ARGV[3], ARGV[2])
return 1
`)

// KEYS: lock, owner index. ARGV: owner, key.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
`)

// KEYS: owner index. ARGV: owner, lock key prefix.
//
// The lock keys are built here from the index, so they are not in KEYS; the
// shared hash tag keeps them in the index's slot on Redis Cluster.
var releaseAllScript = redis.NewScript(prelude + `
local n = 0
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now_ms(), '+inf')) do
  local k = ARGV[2] .. key
  if redis.call('GET', k) == ARGV[1] then
    redis.call('DEL', k)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n
`)

// KEYS: state, lock, owner index.
// ARGV: owner, ttl ms, tick ms, policy, key, owner index prefix, task-wide ("1" or "0").
// Returns {outcome, previous tick or "", token}; outcome 1 claimed, 2
// already claimed, 3 busy.
var claimScript = redis.NewScript(prelude + `
local st = redis.call('HMGET', KEYS[1], 'tick', 'fence')
local prev = st[1] or ''
if st[1] and tonumber(ARGV[3]) <= tonumber(st[1]) then return {2, prev} end
local cur = redis.call('GET', KEYS[2])
if cur then
  if ARGV[4] == 'Forbid' then return {3, prev} end
  redis.call('ZREM', ARGV[6] .. cur, ARGV[5])
end
-- The token also follows the server's clock (microseconds), so it keeps
-- rising even when this record is lost with a store that keeps nothing.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fence = string.format('%.0f', math.max((tonumber(st[2]) or 0) + 1, now_us))
redis.call('HSET', KEYS[1], 'tick', ARGV[3], 'fence', fence)
if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'held', fence) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
index(KEYS[3], ARGV[5], ARGV[2])
return {1, prev, fence}
`)

// leaseCheck is true when KEYS[1] (lock) is ARGV[1] (owner) and, for a
// task-wide lease (ARGV[5] == "1"), KEYS[2] (state) says ARGV[4] (token)
// holds it. A per-tick lease's key is unique to its claim.
const leaseCheck = `
local function held()
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
  return ARGV[5] ~= '1' or redis.call('HGET', KEYS[2], 'held') == ARGV[4]
end
`

// KEYS: lock, state, owner index. ARGV: owner, ttl ms, key, token, task-wide.
var renewLeaseScript = redis.NewScript(prelude + leaseCheck + `
if not held() then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
index(KEYS[3], ARGV[3], ARGV[2])
return 1
`)

// KEYS: lock, state, owner index. ARGV: owner, unused, key, token, task-wide.
var releaseLeaseScript = redis.NewScript(leaseCheck + `
if not held() then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
`)
