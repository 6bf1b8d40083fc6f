"""A token's send budget shared through Redis by every process that sends with it.

Each process keeps its own Pacer (priorities, holds, lanes); before it grants a slot it reserves one
here, so that N delivery processes together stay within the token's global rate and each chat's
windows, instead of each taking a fixed slice. Times come from Redis ``TIME``, so the processes'
clocks never matter. One round trip per send; the keys expire on their own (bounded memory).

If Redis cannot be reached the pacer goes on with its local budget (and says so in the log): a
Redis outage must not stop replies.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from core.keys import Keys
from core.pacer import Limits, Reservation

# KEYS[1]: the global next-slot key; KEYS[2]: the lane's send-time zset ('' for global-only sends);
# KEYS[3]: the lane's hold key ('' for none).
# ARGV[1]: global interval s; ARGV[2]: windows "count:seconds,..."; ARGV[3]: lane ttl s; ARGV[4]: a unique member;
# ARGV[5]: hold_all seconds (> 0: only push the global slot that far out, reserve nothing).
# Returns {kind, seconds}: {"ok", wait before the reserved slot} or {"lane", wait until the lane opens}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local hold = tonumber(ARGV[5])
if hold > 0 then
  if now + hold > nxt then redis.call('SET', KEYS[1], tostring(now + hold), 'EX', math.ceil(hold) + 60) end
  return {'held', '0'}
end
if KEYS[3] ~= '' then
  local held_ms = redis.call('PTTL', KEYS[3])
  if held_ms > 0 then return {'lane', tostring(held_ms / 1000)} end
end
if KEYS[2] ~= '' and ARGV[2] ~= '' then
  local longest = 0
  local wait = 0
  for count, window in string.gmatch(ARGV[2], '(%d+):([%d%.]+)') do
    count = tonumber(count); window = tonumber(window)
    if window > longest then longest = window end
    local recent = redis.call('ZRANGEBYSCORE', KEYS[2], now - window, '+inf', 'WITHSCORES')
    local n = #recent / 2
    if n >= count then
      local oldest_needed = tonumber(recent[(n - count) * 2 + 2])
      local w = oldest_needed + window - now
      if w > wait then wait = w end
    end
  end
  if wait > 0 then return {'lane', tostring(wait)} end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - longest)
end
local slot = math.max(now, nxt)
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[1])), 'EX', 60)
if KEYS[2] ~= '' and ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], slot, ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return {'ok', tostring(slot - now)}
"""


class SharedBudget:
    """Slots of one platform's token, reserved in Redis (``platform``: "tg", "dc")."""

    def __init__(self, redis: Redis, keys: Keys, platform: str, limits: Limits) -> None:
        self.redis = redis
        self.keys = keys
        self.platform = platform
        self.limits = limits
        self._script = redis.register_script(_RESERVE)
        self._me = uuid.uuid4().hex[:12]  # members of a lane's zset are unique across processes
        self._n = 0

    def _windows(self, group: bool) -> str:
        return ",".join(f"{c}:{w:g}" for c, w in (self.limits.group if group else self.limits.private))

    async def reserve(self, lane: str | None, group: bool) -> Reservation:
        """Reserve the next global slot, and a place in the lane's windows (or say when the lane opens)."""
        self._n += 1
        lane_key = self.keys.pace_lane(self.platform, lane) if lane is not None else ""
        hold_key = self.keys.pace_hold(self.platform, lane) if lane is not None else ""
        kind, seconds = await self._script(
            keys=[self.keys.pace_slot(self.platform), lane_key, hold_key],
            args=[
                1.0 / self.limits.global_per_s,
                self._windows(group),
                int(self.limits.horizon_s) + 5,
                f"{self._me}:{self._n}",
                0,
            ],
        )
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        wait = max(0.0, float(seconds.decode() if isinstance(seconds, bytes) else seconds))
        return Reservation(wait, lane_closed=kind == "lane")

    async def hold_all(self, retry_after_s: float) -> None:
        """A 429 for the whole token: every process's next slot moves past it."""
        await self._script(
            keys=[self.keys.pace_slot(self.platform), "", ""],
            args=[1.0 / self.limits.global_per_s, "", 0, "", retry_after_s],
        )

    async def hold(self, lane: str, retry_after_s: float) -> None:
        """A 429 for one chat: no process sends to it until ``retry_after_s`` has passed."""
        await self.redis.set(self.keys.pace_hold(self.platform, lane), 1, px=max(1, int(retry_after_s * 1000)))
