"""The Redis scripts that keep liquidation events and their per-minute and per-hour sums in step.

Each (asset, venue) has two keys: the events ZSET (``Keys.liq_events``) and a HASH of sums
(``Keys.liq_sums``). Its fields are ``<minute>:long``, ``<minute>:short`` (USD) and ``<minute>:n``
(events), with ``<minute>`` = ``ts_ms // 60000``; the same per hour as ``h<hour>:...`` with
``<hour>`` = ``<minute> // 60``; and ``keep``, the oldest event time still kept (ms). A script
adds an event and counts it in its minute and hour in one step, and only when ``ZADD NX`` added
it, so the sums hold exactly the events of the ZSET: a replay or a second process adds nothing, a
late event lands in its own minute.

A window is read as the events of its partial first minute (from the ZSET), then whole minutes up
to the first whole hour, whole hours, and whole minutes up to the minute of ``now`` (from the
sums: a few hundred fields with no parsing, however many events), then the events after that
minute (times ahead of ``now``, which the windows count like ``windows_of`` does).

Both scripts first mend a pair whose keys disagree: events without sums (a Redis written before
the sums existed) get their sums rebuilt from the events; sums without events (the events' key
evicted or deleted) are dropped. A flushed Redis has neither, which is consistent.
"""

from __future__ import annotations

# Helpers shared by both scripts. ``mend(ev, sums)``: the repair above.
_COMMON = """
local function minute_hour(ts)
  local m = math.floor(ts / 60000)
  return string.format('%d', m), 'h' .. string.format('%d', math.floor(m / 60))
end

local function mend(ev, sums)
  local has_ev = redis.call('EXISTS', ev) == 1
  local has_sums = redis.call('EXISTS', sums) == 1
  if has_sums and not has_ev then
    redis.call('DEL', sums)
  elseif has_ev and not has_sums then
    local acc = {}
    local rows = redis.call('ZRANGE', ev, 0, -1, 'WITHSCORES')
    for i = 1, #rows, 2 do
      local ok, e = pcall(cjson.decode, rows[i])
      if ok and type(e) == 'table' and (e.side == 'long' or e.side == 'short') and type(e.usd) == 'number' then
        local m, h = minute_hour(tonumber(rows[i + 1]))
        for _, b in ipairs({m, h}) do
          acc[b .. ':' .. e.side] = (acc[b .. ':' .. e.side] or 0) + e.usd
          acc[b .. ':n'] = (acc[b .. ':n'] or 0) + 1
        end
      end
    end
    redis.call('HSET', sums, 'keep', '0')
    local args = {}
    for f, x in pairs(acc) do
      args[#args + 1] = f
      args[#args + 1] = string.format('%.17g', x)
      if #args >= 1000 then
        redis.call('HSET', sums, unpack(args))
        args = {}
      end
    end
    if #args > 0 then redis.call('HSET', sums, unpack(args)) end
  end
end
"""

# KEYS: per (asset, venue) its events ZSET then its sums HASH.
# ARGV[1]: now ms; ARGV[2]: how long events are kept (ms); then per event five values: the pair's
# number (1-based), the member (event JSON), ts ms, the side to count ('long', 'short', or '' for an
# event no window counts), USD.
# Drops events older than now - keep (and the minutes and hours wholly before), then adds the batch;
# returns 1 per event added, 0 per event already there or too old to keep.
ADD = (
    _COMMON
    + """
local function drop(sums, prefix, from, upto)
  for b = from, upto - 1 do
    local s = prefix .. string.format('%d', b)
    redis.call('HDEL', sums, s .. ':long', s .. ':short', s .. ':n')
  end
end

local now = tonumber(ARGV[1])
local keep_for = tonumber(ARGV[2])
local keep = {}
for p = 1, #KEYS / 2 do
  local ev, sums = KEYS[2 * p - 1], KEYS[2 * p]
  mend(ev, sums)
  local prev = tonumber(redis.call('HGET', sums, 'keep') or '0')
  local k = math.max(now - keep_for + 1, prev)
  redis.call('ZREMRANGEBYSCORE', ev, '-inf', '(' .. string.format('%d', k))
  local upto = math.floor(k / 60000)  -- minutes before this one (hours before its hour) hold only dropped events
  local from = math.floor(prev / 60000)
  if prev == 0 or upto - from > 1500 then  -- unknown or long ago: look at every field
    for _, f in ipairs(redis.call('HKEYS', sums)) do
      local hour, digits = string.match(f, '^(h?)(%d+):')
      if digits and tonumber(digits) < (hour == 'h' and math.floor(upto / 60) or upto) then
        redis.call('HDEL', sums, f)
      end
    end
  else
    drop(sums, '', from, upto)
    drop(sums, 'h', math.floor(from / 60), math.floor(upto / 60))
  end
  keep[p] = k
end
local added = {}
for i = 3, #ARGV, 5 do
  local p = tonumber(ARGV[i])
  local ts = tonumber(ARGV[i + 2])
  local n = 0
  if ts >= keep[p] then
    n = redis.call('ZADD', KEYS[2 * p - 1], 'NX', ARGV[i + 2], ARGV[i + 1])
    local side = ARGV[i + 3]
    if n == 1 and side ~= '' then
      for _, b in ipairs({minute_hour(ts)}) do
        redis.call('HINCRBYFLOAT', KEYS[2 * p], b .. ':' .. side, ARGV[i + 4])
        redis.call('HINCRBY', KEYS[2 * p], b .. ':n', 1)
      end
    end
  end
  added[#added + 1] = n
end
for p = 1, #KEYS / 2 do
  local ev, sums = KEYS[2 * p - 1], KEYS[2 * p]
  if redis.call('EXISTS', ev) == 1 then
    redis.call('HSET', sums, 'keep', string.format('%d', keep[p]))
  else
    redis.call('DEL', sums)
  end
end
return added
"""
)

# KEYS: as for ADD. ARGV[1]: where the events after the minute of now start (ms); then per window,
# shortest first, eight values: its start (ms, counted), '(' and the end of its partial first
# minute (ms), then three half-open spans of whole minutes, whole hours and whole minutes.
# Returns per pair: the USD per side and window from the sums as strings ('%.17g': a number reply
# would be cut to an integer), long then short for each window, the count of the longest window's
# sums, the members of each window's partial first minute, then the members after the minute of now.
# The caller adds those members exactly.
WINDOWS = (
    _COMMON
    + """
local nw = (#ARGV - 1) / 8

local function fields(names, prefix, from, upto, with_n)
  for b = from, upto - 1 do
    local s = prefix .. string.format('%d', b)
    names[#names + 1] = s .. ':long'
    names[#names + 1] = s .. ':short'
    if with_n then names[#names + 1] = s .. ':n' end
  end
end

local out = {}
for p = 1, #KEYS / 2 do
  local ev, sums = KEYS[2 * p - 1], KEYS[2 * p]
  mend(ev, sums)
  local row, edges, count = {}, {}, 0
  for w = 1, nw do
    local o = 1 + 8 * (w - 1)
    local with_n = w == nw
    local names = {}
    fields(names, '', tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4]), with_n)
    fields(names, 'h', tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6]), with_n)
    fields(names, '', tonumber(ARGV[o + 7]), tonumber(ARGV[o + 8]), with_n)
    local long, short = 0, 0
    if #names > 0 then
      local vals = redis.call('HMGET', sums, unpack(names))
      local stride = with_n and 3 or 2
      for i = 1, #vals, stride do
        if vals[i] then long = long + tonumber(vals[i]) end
        if vals[i + 1] then short = short + tonumber(vals[i + 1]) end
        if with_n and vals[i + 2] then count = count + tonumber(vals[i + 2]) end
      end
    end
    row[#row + 1] = string.format('%.17g', long)
    row[#row + 1] = string.format('%.17g', short)
    edges[w] = redis.call('ZRANGEBYSCORE', ev, ARGV[o + 1], ARGV[o + 2])
  end
  row[#row + 1] = string.format('%d', count)
  for w = 1, nw do row[#row + 1] = edges[w] end
  row[#row + 1] = redis.call('ZRANGEBYSCORE', ev, ARGV[1], '+inf')
  out[p] = row
end
return out
"""
)
