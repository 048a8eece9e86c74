"""The Lua scripts that change the shared state: each runs atomically inside Redis.

Every change to a replicated map goes through ``MUTATE`` or ``REAP``: they change the
hashes and append one event (a sequence number and the ops) to the change stream in the
same step, so a host that reads the stream never misses a change nor sees one twice.
Times are Redis's own clock (``TIME``), so the hosts' clocks never decide a lease.

Keys, under one hash tag so that they share a slot: ``{P}:m:MAP`` (a replicated map, a
hash), ``{P}:own:OWNER`` (the set of ``MAP|KEY`` entries an owner holds), ``{P}:leases``
(owner → lease end, ms), ``{P}:expiry`` (``MAP|KEY`` → end, ms), ``{P}:seq``,
``{P}:events`` (the change stream) and ``{P}:rl:KEY`` (a rate-limit bucket).
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_EMIT = """
local function emit(p, out, maxlen)
  if #out == 0 then return -1 end
  local seq = redis.call('INCR', p .. ':seq')
  redis.call('XADD', p .. ':events', 'MAXLEN', '~', maxlen, '*', 's', seq, 'e', cjson.encode(out))
  return seq
end
"""

# ARGV: prefix, stream maxlen, batch JSON {"g": [map, key] (optional), "o": [op, ...]}
# op: ["p", map, key, value, owner, ttl_ms]   put (owner "" for none, ttl 0 for none)
#     ["d", map, key, "", owner, 0]           delete
#     ["l", "", owner, cap_ms, "", ttl_ms]    start a lease (cap 0: none)
# Returns the event's sequence number, -1 when nothing changed, 0 when the guard failed.
MUTATE = (
    _NOW
    + _EMIT
    + """
local p, maxlen = ARGV[1], ARGV[2]
local batch = cjson.decode(ARGV[3])
local g = batch['g']
if g and redis.call('HEXISTS', p .. ':m:' .. g[1], g[2]) == 0 then return 0 end
local out = {}
for _, op in ipairs(batch['o']) do
  local kind, map, key = op[1], op[2], op[3]
  local member = map .. '|' .. key
  if kind == 'p' then
    redis.call('HSET', p .. ':m:' .. map, key, op[4])
    if op[5] ~= '' then redis.call('SADD', p .. ':own:' .. op[5], member) end
    if op[6] > 0 then redis.call('ZADD', p .. ':expiry', now + op[6], member) end
    table.insert(out, {'p', map, key, op[4]})
  elseif kind == 'd' then
    if redis.call('HDEL', p .. ':m:' .. map, key) == 1 then table.insert(out, {'d', map, key}) end
    if op[5] ~= '' then redis.call('SREM', p .. ':own:' .. op[5], member) end
    redis.call('ZREM', p .. ':expiry', member)
  elseif kind == 'l' then
    local deadline = now + op[6]
    local cap = tonumber(op[4])
    if cap > 0 and cap < deadline then deadline = cap end
    redis.call('ZADD', p .. ':leases', deadline, key)
  end
end
return emit(p, out, maxlen)
"""
)

# ARGV: prefix, then pairs owner, ttl_ms; cap_ms. Extends live leases only (a lease that
# ended stays ended). Returns one 1 (extended) or 0 (no such lease) per owner.
TOUCH = (
    _NOW
    + """
local p = ARGV[1]
local out = {}
for i = 2, #ARGV, 3 do
  local owner, ttl, cap = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if redis.call('ZSCORE', p .. ':leases', owner) then
    local deadline = now + ttl
    if cap > 0 and cap < deadline then deadline = cap end
    redis.call('ZADD', p .. ':leases', deadline, owner)
    table.insert(out, 1)
  else
    table.insert(out, 0)
  end
end
return out
"""
)

# ARGV: prefix, stream maxlen, limit. Ends every lease and entry past its time: an owner's
# entries all go with its lease. Returns how many owners and entries ended.
REAP = (
    _NOW
    + _EMIT
    + """
local p, maxlen, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local count = 0
local function drop(member)
  local bar = string.find(member, '|', 1, true)
  local map, key = string.sub(member, 1, bar - 1), string.sub(member, bar + 1)
  if redis.call('HDEL', p .. ':m:' .. map, key) == 1 then
    table.insert(out, {'d', map, key})
  end
  redis.call('ZREM', p .. ':expiry', member)
end
local ended = redis.call('ZRANGEBYSCORE', p .. ':leases', '-inf', now, 'LIMIT', 0, limit)
for _, owner in ipairs(ended) do
  for _, member in ipairs(redis.call('SMEMBERS', p .. ':own:' .. owner)) do drop(member) end
  redis.call('DEL', p .. ':own:' .. owner)
  redis.call('ZREM', p .. ':leases', owner)
  count = count + 1
end
local expired = redis.call('ZRANGEBYSCORE', p .. ':expiry', '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(expired) do
  drop(member)
  count = count + 1
end
emit(p, out, maxlen)
return count
"""
)

# ARGV: prefix, then map names. Returns {seq, last stream id, {k, v, ...} per map}, all in
# one atomic step, so reading the stream after that id misses nothing.
SNAPSHOT = """
local p = ARGV[1]
local last = redis.call('XREVRANGE', p .. ':events', '+', '-', 'COUNT', 1)
local out = {redis.call('GET', p .. ':seq') or '0', last[1] and last[1][1] or '0-0'}
for i = 2, #ARGV do table.insert(out, redis.call('HGETALL', p .. ':m:' .. ARGV[i])) end
return out
"""

# ARGV: prefix, then quadruples key, spent, rps, burst. A token bucket per key, refilled at
# rps up to burst by Redis's clock; ``spent`` tokens are taken even if that leaves it below
# zero (down to -burst): calls already admitted on stale counts are paid back from later
# refills. Returns each bucket's level as a string.
SPEND = (
    _NOW
    + """
local p = ARGV[1]
local out = {}
for i = 2, #ARGV, 4 do
  local key, spent = p .. ':rl:' .. ARGV[i], tonumber(ARGV[i + 1])
  local rps, burst = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local state = redis.call('HMGET', key, 't', 'ts')
  local tokens, ts = tonumber(state[1]), tonumber(state[2])
  if tokens == nil then tokens, ts = burst, now end
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rps / 1000) - spent
  if tokens < -burst then tokens = -burst end
  redis.call('HSET', key, 't', tostring(tokens), 'ts', now)
  local idle = 60000
  if rps > 0 then idle = math.ceil((burst - tokens) / rps * 1000) + 1000 end
  redis.call('PEXPIRE', key, idle)
  table.insert(out, tostring(tokens))
end
return out
"""
)
