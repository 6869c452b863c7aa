-- Settles one admitted request, atomically: corrects its token reservation with what it
-- used, gives its place in flight back, adds its cost to the budgets.
--
-- KEYS, four per layer (the key's own, then its team's): rpm, tpm, par, spend.
-- ARGV[1] tokens reserved, ARGV[2] tokens used, ARGV[3] cost USD, ARGV[4] the admission's
-- member id ("" when it was admitted without this store: only the cost is added),
-- ARGV[5] the number of layers, ARGV[6] 1 to give the request back too (an admission whose
-- caller had stopped waiting), then five per layer: rpm limit, tpm limit, whether a place in
-- flight was taken (1/0), soft budget USD ("" when none), seconds the spend key is kept
-- ("" without a budget).
--
-- Returns, comma-separated in one string, two per layer: the period's spend after ("" without
-- a budget), and 1 when this settlement crossed the soft budget (so exactly one replica
-- reports it).
local WINDOW = 60000000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local reserved = tonumber(ARGV[1])
local used = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local member = ARGV[4]
local layers = tonumber(ARGV[5])
local request_back = ARGV[6] == '1'

local function level(key, limit)
  local v = redis.call('HMGET', key, 'l', 't')
  local l = tonumber(v[1]) or 0
  local at = tonumber(v[2]) or now
  if now > at then l = l - (now - at) * limit / WINDOW end
  if l < 0 then l = 0 end
  return l
end

local out = {}
for i = 1, layers do
  local a = 6 + (i - 1) * 5
  local k = (i - 1) * 4
  local rpm = tonumber(ARGV[a + 1])
  if member ~= '' and request_back and rpm and rpm > 0 then
    local key = KEYS[k + 1]
    local l = math.max(level(key, rpm) - 1, 0)
    redis.call('HSET', key, 'l', l, 't', now)
    redis.call('PEXPIRE', key, math.ceil(l * WINDOW / rpm / 1000) + 1000)
  end
  local tpm = tonumber(ARGV[a + 2])
  if member ~= '' and tpm and tpm > 0 then
    local key = KEYS[k + 2]
    local l = level(key, tpm)
    local r = reserved
    if r > tpm then r = tpm end
    if used > r then
      -- Debt past the limit is paid back by waiting, at most an hour of it.
      l = math.min(l + used - r, tpm * 61)
    else
      l = math.max(l - (r - used), 0)
    end
    redis.call('HSET', key, 'l', l, 't', now)
    redis.call('PEXPIRE', key, math.ceil(l * WINDOW / tpm / 1000) + 1000)
  end
  if member ~= '' and ARGV[a + 3] == '1' then
    redis.call('ZREM', KEYS[k + 3], member)
  end
  local keep = tonumber(ARGV[a + 5])
  local spend, crossed = '', 0
  if keep then
    local key = KEYS[k + 4]
    local before = tonumber(redis.call('GET', key)) or 0
    local after = before
    if cost > 0 then
      after = tonumber(redis.call('INCRBYFLOAT', key, ARGV[3]))
    end
    redis.call('EXPIRE', key, keep)
    local soft = tonumber(ARGV[a + 4])
    if soft and before < soft and after >= soft then crossed = 1 end
    spend = tostring(after)
  end
  out[#out + 1] = spend
  out[#out + 1] = crossed
end
return table.concat(out, ',')
