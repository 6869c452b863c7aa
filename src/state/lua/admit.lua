-- Admits one request against the limits of a key and its team, or refuses it, atomically.
--
-- KEYS, four per layer (the key's own, then its team's): rpm, tpm, par, spend.
-- ARGV[1] tokens reserved, ARGV[2] the admission's member id, ARGV[3] its lease (µs),
-- ARGV[4] the number of layers, then four per layer: rpm limit, tpm limit, parallel limit,
-- budget USD ("" when not configured).
--
-- Rates are leaky buckets (the GCRA's equivalent): a hash {l = level, t = µs}; the level
-- drains at `limit` per minute and a take fits while it stays within `limit`. Requests in
-- flight are a sorted set of leases scored by their end, so a replica that dies gives its
-- places back when they expire. Time is the server's (TIME), the same for every replica.
--
-- Returns, comma-separated in one string (one reply element is the cheapest to read): code,
-- layer, wait µs, then seven per layer: request limit, remaining, reset µs, token limit,
-- remaining, reset µs, spend; code 0 admitted, 1 rpm, 2 tpm, 3 parallel, 4 budget. Nothing is
-- written unless the request is admitted.
local WINDOW = 60000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local estimate = tonumber(ARGV[1])
local member = ARGV[2]
local lease = tonumber(ARGV[3])
local layers = tonumber(ARGV[4])

local function level(key, limit)
  local v = redis.call('HMGET', key, 'l', 't')
  local l = tonumber(v[1]) or 0
  local at = tonumber(v[2]) or now
  if now > at then
    l = l - (now - at) * limit / WINDOW
  end
  if l < 0 then l = 0 end
  return l
end

local code, refused, wait = 0, 0, 0
local function refuse(c, i, w)
  if code == 0 then code, refused, wait = c, i, w end
end

local quotas = {}
local writes = {}
-- Budgets first: a look, nothing taken.
local spends = {}
for i = 1, layers do
  local a = 4 + (i - 1) * 4
  local budget = tonumber(ARGV[a + 4])
  local spend = 0
  if budget then
    spend = tonumber(redis.call('GET', KEYS[(i - 1) * 4 + 4])) or 0
    if spend >= budget then refuse(4, i, 0) end
  end
  spends[i] = spend
end
for i = 1, layers do
  local a = 4 + (i - 1) * 4
  local k = (i - 1) * 4
  local q = {-1, 0, 0, -1, 0, 0}
  for j, units in ipairs({1, estimate}) do
    local limit = tonumber(ARGV[a + j])
    if limit and limit > 0 then
      local key = KEYS[k + j]
      if units > limit then units = limit end
      local l = level(key, limit)
      local next = l + units
      local after = next
      if next > limit then
        refuse(j, i, (next - limit) * WINDOW / limit)
        after = l
      else
        writes[#writes + 1] = {key, next, limit}
      end
      q[(j - 1) * 3 + 1] = limit
      q[(j - 1) * 3 + 2] = math.floor(limit - after)
      q[(j - 1) * 3 + 3] = math.ceil(after * WINDOW / limit)
    end
  end
  local par = tonumber(ARGV[a + 3])
  if par and par > 0 then
    local key = KEYS[k + 3]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) >= par then
      refuse(3, i, 0)
    else
      writes[#writes + 1] = {key, -1, 0}
    end
  end
  quotas[i] = q
end

if code == 0 then
  for _, w in ipairs(writes) do
    if w[2] < 0 then
      redis.call('ZADD', w[1], now + lease, member)
      redis.call('PEXPIRE', w[1], math.ceil(lease / 1000) + 1000)
    else
      redis.call('HSET', w[1], 'l', w[2], 't', now)
      redis.call('PEXPIRE', w[1], math.ceil(w[2] * WINDOW / w[3] / 1000) + 1000)
    end
  end
end

local out = {code, refused, math.ceil(wait)}
for i = 1, layers do
  for _, v in ipairs(quotas[i]) do out[#out + 1] = v end
  out[#out + 1] = tostring(spends[i])
end
return table.concat(out, ',')
