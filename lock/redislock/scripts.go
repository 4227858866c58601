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
//	                 key names an instance once its locks are gone), key
//	                 (the lock key it took, "task@tick" under Allow; records
//	                 written without it mean the task name) and busy (the
//	                 last tick skipped as busy), rival (the last claimed
//	                 tick another session asked for and was refused, so
//	                 that the winner learns it has peers). The last recorded run:
//	                 run_tick (Unix ms, "" for none), run_token, run_owner,
//	                 run_result, run_ms (its duration), run_end (the
//	                 server's time it was recorded, Unix ms) and run_err.
//	                 Forget leaves only fence, so that tokens keep rising.
//	P epoch          string, the server's time (Unix ms) from which it holds
//	                 every claim record; set when missing, so a server that
//	                 restarted empty gets a new one at its first call
//	P epoch:server   string, the run_id of the Redis process that began the
//	                 epoch: a claim served by another (a restart from a
//	                 snapshot, a failover) begins a new epoch, since the
//	                 last records before it may be lost
//	P epoch:guard    string, present (PX) for a ttl after an epoch that
//	                 began with a loss: Forbid claims are Busy meanwhile,
//	                 since runs from before may still hold locks the store
//	                 no longer knows of
//
// prelude is shared by the scripts that index locks.
const prelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- index_all records members in the owner index idx until now+ttl, and
-- drops the members whose locks have expired, so the index cannot grow
-- without bound.
local function index_all(idx, members, ttl)
  if #members == 0 then return end
  local now = now_ms()
  local expiry = now + tonumber(ttl)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  -- In slices: unpack is bounded by Lua's stack.
  for i = 1, #members, 200 do
    local args = {}
    for j = i, math.min(i + 199, #members) do
      args[#args + 1] = expiry
      args[#args + 1] = members[j]
    end
    redis.call('ZADD', idx, unpack(args))
  end
  if redis.call('PTTL', idx) < tonumber(ttl) then
    redis.call('PEXPIRE', idx, ttl)
  end
end
local function index(idx, member, ttl) index_all(idx, {member}, ttl) end
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

// epochPrelude keeps the epoch. server_id is the serving process's run_id,
// or "" where INFO is not available (miniredis).
const epochPrelude = `
local function server_id()
  local info = redis.pcall('INFO', 'server')
  if type(info) ~= 'string' then return '' end
  -- A plain find first: a pattern search of the whole text costs more
  -- than INFO itself.
  local at = string.find(info, 'run_id:', 1, true)
  return at and string.match(info, '^%x+', at + 7) or ''
end
-- begin_epoch starts an epoch at now, in the keys ekey (epoch) and skey
-- (the server that began it).
local function begin_epoch(ekey, skey, now)
  redis.call('SET', ekey, string.format('%.0f', now))
  local sid = server_id()
  if sid ~= '' then redis.call('SET', skey, sid) end
  return now
end
`

// KEYS: epoch, epoch:server. Returns {epoch ms, now ms}.
var epochScript = redis.NewScript(prelude + epochPrelude + `
local now = now_ms()
local e = tonumber(redis.call('GET', KEYS[1])) or begin_epoch(KEYS[1], KEYS[2], now)
return {e, now}
`)

// KEYS: epoch, epoch:server, epoch:guard, owner index, then for each claim
// its state, lock and fence. ARGV: owner, ttl ms, session, max skew ms,
// known epoch ms (0: none), then for each claim its tick ms, policy, key
// and not after ms (0: none).
// Returns {now, epoch, then for each claim: outcome, previous tick or "",
// token or "", future record or "", flag: 1 guarded (with busy), 2
// contested (with claimed: another session claimed the task's tick before,
// or asked for it and was refused), else 0};
// outcome 1 claimed, 2
// already claimed, 3 busy, 4 not yet, 5 clock ahead, 6 store lost, 7 too
// late (the order of lock.Outcome).
//
// The claims of a batch share what does not depend on the task: one
// reading of the clock, of the epoch (with its INFO), and one update of
// the owner index for all the locks taken.
var claimScript = redis.NewScript(prelude + epochPrelude + `
local now = now_ms()
local owner, ttl, session, known = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[5])
local epoch = tonumber(redis.call('GET', KEYS[1]))
local lost = false
if epoch then
  local sid = server_id()
  if sid ~= '' and redis.call('GET', KEYS[2]) ~= sid then
    -- Served by another Redis process than the one that began the epoch:
    -- it restarted (perhaps from an older snapshot) or failed over, and
    -- the last records before may be gone.
    epoch, lost = begin_epoch(KEYS[1], KEYS[2], now), true
  elseif known > 0 and known < epoch then
    lost = true -- the caller saw the epoch before this one
  end
else
  epoch = begin_epoch(KEYS[1], KEYS[2], now)
  lost = known > 0 -- else a new store, as far as anyone can tell
end
if lost and now < epoch + ttl then
  redis.call('SET', KEYS[3], '1', 'PX', string.format('%.0f', epoch + ttl - now))
end
local horizon = now + tonumber(ARGV[4])
local guarded -- read once, when a Forbid claim first needs it
-- The token also follows the server's clock (microseconds), so it keeps
-- rising even when a record is lost with a store that keeps nothing.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local indexed = {} -- the keys locked, for the owner index

-- claim judges one tick of one task (see lock.Claimer) and returns its
-- outcome, previous tick, token, future record and guarded flag.
local function claim(state, lockk, fence, tick_s, policy, key, not_after)
  local tick = tonumber(tick_s)
  if tick > horizon then return 5, '', '', '', 0 end
  if tick > now then return 4, '', '', '', 0 end
  if tick < epoch then return 6, '', '', '', 0 end

  local st = redis.call('HMGET', state, 'tick', 'fence', 'prev', 'session', 'busy', 'rival')
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
    if future == '' and tick == last and session ~= '' and st[4] == session
        and redis.call('GET', lockk) == owner and redis.call('GET', fence) == st[2] then
      -- The same process asks again for the tick it holds: its answer was lost.
      redis.call('PEXPIRE', lockk, ttl)
      redis.call('PEXPIRE', fence, ttl)
      indexed[#indexed + 1] = key
      return 1, st[3] or '', st[2], '', 0
    end
    local before = tonumber(st[3])
    if future == '' and tick < last and (not before or tick > before) then
      return 7, previous, '', future, 0 -- passed over: claims only move forward
    end
    if st[4] ~= session and st[6] ~= st[1] then
      -- A peer lost the race: the winner's next claim says so (once a tick).
      redis.call('HSET', state, 'rival', st[1])
    end
    return 2, previous, '', future, 0
  end
  if busy and tick <= busy then return 3, previous, '', future, 0 end
  local na = tonumber(not_after)
  if na > 0 and now >= na then return 7, previous, '', future, 0 end
  if policy == 'Forbid' then
    if guarded == nil then guarded = redis.call('EXISTS', KEYS[3]) == 1 end
    -- GET, not EXISTS: a key of the wrong type is an error to report, not a holder.
    if guarded or redis.call('GET', lockk) then
      redis.call('HSET', state, 'busy', tick_s)
      return 3, previous, '', future, guarded and 1 or 0
    end
  end
  local token = string.format('%.0f', math.max((tonumber(st[2]) or 0) + 1, now_us))
  redis.call('HSET', state, 'tick', tick_s, 'fence', token, 'prev', previous, 'session', session, 'key', key)
  if st[5] then redis.call('HDEL', state, 'busy') end -- older than this tick: decided by it
  redis.call('SET', lockk, owner, 'PX', ttl)
  redis.call('SET', fence, token, 'PX', ttl)
  indexed[#indexed + 1] = key
  local contested = st[1] and (st[4] ~= session or st[6] == st[1])
  return 1, previous, token, future, contested and 2 or 0
end

local out = {now, epoch}
for i = 0, (#KEYS - 4) / 3 - 1 do
  local k, a = 5 + 3 * i, 6 + 4 * i
  local code, prev, token, future, g = claim(KEYS[k], KEYS[k + 1], KEYS[k + 2], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = code, prev, token, future, g
end
index_all(KEYS[4], indexed, ttl)
return out
`)

// leaseCheck is the one test of whether a lease is live: its lock still
// held by its owner, under the claim whose token is in its fence. A lock
// taken again by other means, or by a newer claim, fails it.
const leaseCheck = `
local function held(lockk, fence, owner, token)
  return redis.call('GET', lockk) == owner and redis.call('GET', fence) == token
end
`

// KEYS: for each lease its lock, fence and owner index. ARGV: ttl ms, then
// for each lease its owner, key and token.
// Returns for each lease 1 if it was renewed, else 0.
//
// Each owner index is written once for the batch, with all the members
// renewed in it: its sweep of expired members, the clock and its expiry
// are then read once, not once a lease (the leases of a batch are mostly
// one owner's).
var renewLeaseScript = redis.NewScript(prelude + leaseCheck + `
local ttl = ARGV[1]
local out, members, indexes = {}, {}, {}
for i = 0, #KEYS / 3 - 1 do
  local k, a = 1 + 3 * i, 2 + 3 * i
  local lockk, fence, idx = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  out[i + 1] = 0
  if held(lockk, fence, ARGV[a], ARGV[a + 2]) then
    redis.call('PEXPIRE', lockk, ttl)
    redis.call('PEXPIRE', fence, ttl)
    if not members[idx] then
      members[idx] = {}
      indexes[#indexes + 1] = idx
    end
    table.insert(members[idx], ARGV[a + 1])
    out[i + 1] = 1
  end
end
for _, idx in ipairs(indexes) do index_all(idx, members[idx], ttl) end
return out
`)

// KEYS: for each lease its lock, fence, owner index and state. ARGV: for
// each lease its owner, key, token, and to record its run: result ("" to
// record none), tick ms ("" for none), duration ms, error.
// Returns for each lease 1 if it was released, else 0.
//
// A run is recorded whether or not the lock was still the lease's, unless
// the state holds a run with a higher token. Each lease's record is read
// before any of its writes, so that a failing read (a key of the wrong
// type) fails the call before it changed that lease.
var releaseLeaseScript = redis.NewScript(prelude + leaseCheck + `
local now -- read at the first run recorded: a release alone needs no clock
local function release(lockk, fence, idx, state, owner, key, token, result, tick, dur, err)
  local record = result ~= ''
  if record then
    local cur = redis.call('HGET', state, 'run_token')
    -- Tokens are decimal strings without leading zeros: compared exactly,
    -- beyond the 2^53 of Lua's numbers.
    if cur and (#cur > #token or (#cur == #token and cur > token)) then
      record = false
    end
  end
  local released = 0
  if held(lockk, fence, owner, token) then
    redis.call('DEL', lockk, fence)
    redis.call('ZREM', idx, key)
    released = 1
  end
  if record then
    now = now or now_ms()
    redis.call('HSET', state, 'run_token', token, 'run_owner', owner, 'run_result', result,
      'run_tick', tick, 'run_ms', dur, 'run_end', string.format('%.0f', now), 'run_err', err)
  end
  return released
end
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local k, a = 1 + 4 * i, 1 + 7 * i
  out[i + 1] = release(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3],
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6])
end
return out
`)

// lastLock finds the live lock of a task's last claim: the lock on the
// claim's key that still carries the claim's token. The lock and fence
// keys are built here from the state, so they are not in KEYS; the shared
// hash tag keeps them in the state's slot (see releaseAllScript).
const lastLock = `
-- get reads a string key, naming it in the error if it holds another type.
local function get(k)
  local v = redis.pcall('GET', k)
  if type(v) == 'table' and v.err then error('key ' .. k .. ': ' .. v.err) end
  return v
end
-- last_lock returns the owner and key of the live lock of the last claim
-- recorded in the hash state of task, or nil. lockp, fencep: the prefixes
-- of lock and fence keys.
local function last_lock(state, task, lockp, fencep)
  local st = redis.call('HMGET', state, 'tick', 'fence', 'key')
  if not st[1] or not st[2] then return nil end
  local key = st[3] or task
  local owner = get(lockp .. key)
  if owner and get(fencep .. key) == st[2] then return owner, key end
  return nil
end
`

// KEYS: the state hashes to read (one SCAN page), all in one slot.
// ARGV: state, lock and fence key prefixes.
// Returns {now ms, entry...}, an entry {key, "hash", {field, value...},
// holder or "", lock ttl ms} for a hash, {key, "type", type} for a key of
// another type; keys gone since the SCAN are left out.
var tasksScript = redis.NewScript(prelude + lastLock + `
local out = {now_ms()}
for _, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k)
  if type(t) == 'table' then t = t.ok end
  if t == 'hash' then
    -- A lock key of another type spoils this record only.
    local ok, owner, key = pcall(last_lock, k, string.sub(k, #ARGV[1] + 1), ARGV[2], ARGV[3])
    if not ok then
      table.insert(out, {k, 'error', tostring(owner)})
    else
      local left = 0
      if owner then left = redis.call('PTTL', ARGV[2] .. key) end
      table.insert(out, {k, 'hash', redis.call('HGETALL', k), owner or '', left})
    end
  elseif t ~= 'none' then
    table.insert(out, {k, 'type', t})
  end
end
return out
`)

// KEYS: state. ARGV: task, lock, fence and owner index key prefixes, hold
// ms, lock.RevokedOwner.
// forceReleaseScript revokes the live lock of the task's last claim:
// RevokedOwner holds it (and its fence, so that it still reads as that
// claim's) for ARGV[5] ms, and it leaves its owner's index; returns 1 if
// there was one, else 0.
var forceReleaseScript = redis.NewScript(lastLock + `
local owner, key = last_lock(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if not owner then return 0 end
redis.call('SET', ARGV[2] .. key, ARGV[6], 'PX', ARGV[5])
redis.call('PEXPIRE', ARGV[3] .. key, ARGV[5])
redis.call('ZREM', ARGV[4] .. owner, key)
return 1
`)

// KEYS: state. ARGV: task, lock and fence key prefixes, min age ms.
// forgetScript deletes a task's record but its fence, unless the last
// claim's lock is live ({owner, pttl}) or its last decided tick is less
// than ARGV[4] ms old ({'recent', age ms}).
var forgetScript = redis.NewScript(lastLock + `
local owner, key = last_lock(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if owner then return {owner, redis.call('PTTL', ARGV[2] .. key)} end
local st = redis.call('HMGET', KEYS[1], 'tick', 'busy', 'fence')
local last = math.max(tonumber(st[1]) or 0, tonumber(st[2]) or 0)
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if last > 0 and now - last < tonumber(ARGV[4]) then return {'recent', now - last} end
redis.call('DEL', KEYS[1])
if st[3] then redis.call('HSET', KEYS[1], 'fence', st[3]) end
return {}
`)
