#pragma once
// The Lua scripts that make each queue transition one atomic step in Redis
// (one definition of the key layout, RedisKeys.hpp). Every script takes the
// key prefix as ARGV[1] and builds its keys from it, so the layout lives in
// one place per side. Time is Redis's own (TIME), so the nodes' clocks
// never decide whether a lease has lapsed.
//
// Ownership of a running job is its token in <p>owners. A lease's expiry
// (<p>leased) only makes the job eligible to be put back; until someone
// puts it back, the token's holder still owns it (a node that outlived a
// Redis restart may still finish its job), and once put back, never again.
namespace tango::redis_scripts {

inline constexpr const char* kNow = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
)lua";

// Wakes every manager (a job was queued or put back): each has a list that
// holds at most one wake-up, which it waits on with BLPOP.
inline constexpr const char* kWake = R"lua(
for _, node in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'managers')) do
  redis.call('LPUSH', ARGV[1] .. 'wake:' .. node, '1')
  redis.call('LTRIM', ARGV[1] .. 'wake:' .. node, 0, 0)
end
)lua";

// ARGV: prefix, id, doc. Queues a new job (then kWake).
inline constexpr const char* kAdd = R"lua(
local p = ARGV[1]
redis.call('SET', p .. 'job:' .. ARGV[2], ARGV[3])
redis.call('ZADD', p .. 'queued', tonumber(ARGV[2]), ARGV[2])
redis.call('ZADD', p .. 'live', tonumber(ARGV[2]), ARGV[2])
)lua";

// Before renewing or putting back (ARGV[2] = leaseMs): every manager runs
// one of those several times per lease time, so a longer silence means
// Redis itself was away (or every manager was) and nobody could renew
// meanwhile. Then every lease gets one more lease time, so that jobs that
// ran on through the outage can still finish, rather than all going back.
inline constexpr const char* kClock = R"lua(
local last = tonumber(redis.call('GET', ARGV[1] .. 'clock') or now)
redis.call('SET', ARGV[1] .. 'clock', now)
if now - last > tonumber(ARGV[2]) then
  for _, id in ipairs(redis.call('ZRANGE', ARGV[1] .. 'leased', 0, -1)) do
    redis.call('ZADD', ARGV[1] .. 'leased', now + tonumber(ARGV[2]), id)
  end
end
)lua";

// ARGV: prefix, leaseMs. Puts back every job whose lease lapsed (then kWake
// if any).
inline constexpr const char* kRequeueLapsed = R"lua(
local p = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', p .. 'leased', '-inf', now)
for _, id in ipairs(ids) do
  redis.call('ZREM', p .. 'leased', id)
  redis.call('HDEL', p .. 'owners', id)
  redis.call('ZADD', p .. 'queued', tonumber(id), id)
end
)lua";

// ARGV: prefix, id, token, leaseMs. Claims a queued job; returns its
// document, or false when another node claimed it first.
inline constexpr const char* kTake = R"lua(
local p = ARGV[1]
if redis.call('ZREM', p .. 'queued', ARGV[2]) == 0 then return false end
redis.call('ZADD', p .. 'leased', now + tonumber(ARGV[4]), ARGV[2])
redis.call('HSET', p .. 'owners', ARGV[2], ARGV[3])
return redis.call('GET', p .. 'job:' .. ARGV[2])
)lua";

// ARGV: prefix, leaseMs, then id, token pairs. Extends the leases still
// owned; returns the tokens of those that are not (a node may hold two
// leases on one job: a stale one, and the one it took again).
inline constexpr const char* kRenew = R"lua(
local p = ARGV[1]
local lost = {}
for i = 3, #ARGV, 2 do
  if redis.call('HGET', p .. 'owners', ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', p .. 'leased', now + tonumber(ARGV[2]), ARGV[i])
  else
    table.insert(lost, ARGV[i + 1])
  end
end
return lost
)lua";

// ARGV: prefix, id, token, doc. Writes a running job's document if owned.
inline constexpr const char* kUpdate = R"lua(
local p = ARGV[1]
if redis.call('HGET', p .. 'owners', ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('SET', p .. 'job:' .. ARGV[2], ARGV[4])
return 1
)lua";

// ARGV: prefix, id, token, doc. Back to the queue, if owned.
inline constexpr const char* kUnassign = R"lua(
local p = ARGV[1]
if redis.call('HGET', p .. 'owners', ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('SET', p .. 'job:' .. ARGV[2], ARGV[4])
redis.call('ZREM', p .. 'leased', ARGV[2])
redis.call('HDEL', p .. 'owners', ARGV[2])
redis.call('ZADD', p .. 'queued', tonumber(ARGV[2]), ARGV[2])
return 1
)lua";

// ARGV: prefix, id, token, doc, node ('' = no callback). Finished, if owned:
// off the live list onto the dead one; its callback becomes `node`'s. The
// finishing token is kept, so a retry whose first attempt did commit (its
// answer lost on the way) is told so rather than that it lost the job.
inline constexpr const char* kFinish = R"lua(
local p = ARGV[1]
if redis.call('HGET', p .. 'owners', ARGV[2]) ~= ARGV[3] then
  if redis.call('HGET', p .. 'finishedby', ARGV[2]) == ARGV[3] then return 1 end
  return 0
end
redis.call('HSET', p .. 'finishedby', ARGV[2], ARGV[3])
redis.call('HDEL', p .. 'cancel', ARGV[2])
redis.call('SET', p .. 'job:' .. ARGV[2], ARGV[4])
redis.call('ZREM', p .. 'leased', ARGV[2])
redis.call('HDEL', p .. 'owners', ARGV[2])
redis.call('ZREM', p .. 'live', ARGV[2])
redis.call('ZADD', p .. 'dead', now, ARGV[2])
if ARGV[5] ~= '' then redis.call('SADD', p .. 'cb:' .. ARGV[5], ARGV[2]) end
return 1
)lua";

// ARGV: prefix, id. Records a cancel for a live job (its runner's renewals
// find it); returns whether the job is live.
inline constexpr const char* kRequestCancel = R"lua(
local p = ARGV[1]
if not redis.call('ZSCORE', p .. 'live', ARGV[2]) then return 0 end
redis.call('HSET', p .. 'cancel', ARGV[2], '1')
return 1
)lua";

// ARGV: prefix, token prefix ("<node>/"). A restarted node puts back every
// job its earlier instance held (then kWake); leaves their ids in `ids`.
inline constexpr const char* kRecover = R"lua(
local p = ARGV[1]
local owners = redis.call('HGETALL', p .. 'owners')
local ids = {}
for i = 1, #owners, 2 do
  if string.sub(owners[i + 1], 1, #ARGV[2]) == ARGV[2] then
    redis.call('ZREM', p .. 'leased', owners[i])
    redis.call('HDEL', p .. 'owners', owners[i])
    redis.call('ZADD', p .. 'queued', tonumber(owners[i]), owners[i])
    table.insert(ids, owners[i])
  end
end
)lua";

// ARGV: prefix, dead node, this node. Claims a node whose registration
// lapsed, if no other node claimed it first, and moves its pending
// callbacks to this node in the same step; returns false, or their ids.
inline constexpr const char* kClaimDeadNode = R"lua(
local p = ARGV[1]
if redis.call('EXISTS', p .. 'node:' .. ARGV[2]) == 1 then return false end
if redis.call('SREM', p .. 'nodes', ARGV[2]) == 0 then return false end
local ids = redis.call('SMEMBERS', p .. 'cb:' .. ARGV[2])
for _, id in ipairs(ids) do redis.call('SADD', p .. 'cb:' .. ARGV[3], id) end
redis.call('DEL', p .. 'cb:' .. ARGV[2])
return ids
)lua";

}  // namespace tango::redis_scripts
