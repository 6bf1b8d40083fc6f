"""One active process per job across replicas: a Redis lease per job, renewed while alive.

Jobs are the sources data replicas poll (``market:okx``, ``flows:coinmetrics``), the Telegram poller of
chat replicas (Telegram answers 409 to a second ``getUpdates`` on one token) and their Discord gateway
session (every session of a token receives each slash command).

Every ``--role data`` process runs a :class:`LeaseKeeper` for the sources it could poll. The keeper
renews the leases it holds every ``ttl/3`` and takes them when all of them are free, all or nothing in
one script: rule evaluation runs in the process that polls, so one process polls every source, and two
standbys racing for a dead process's leases never split them. A watcher's step waits until its
source's lease is held here (``LeaseKeeper.polling``), so a standby polls nothing until the active
process dies or stops. A stopped process hands its leases back at once; a killed one loses them when
the TTL runs out, and a standby polls within ``ttl + ttl/3`` seconds.

A keeper that cannot reach Redis drops its claims (its watchers pause) rather than risk a second
poller; Redis flushed or restarted empty, the keeper simply takes the leases again. ``still_held``
asks Redis whether a lease is still ours, for a caller that wants to re-check right before writing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis

log = logging.getLogger(__name__)

T = TypeVar("T")

# all or nothing, atomically: when every lease is ours or free, take or renew them all; otherwise renew only
# ours. Two standbys racing for a dead process's leases never split them.
_ACQUIRE = """
local taken = 0
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[1] or not v then taken = taken + 1 end
end
local out = {}
for i, k in ipairs(KEYS) do
  if taken == #KEYS then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  elseif redis.call('GET', k) == ARGV[1] then
    redis.call('PEXPIRE', k, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

DEFAULT_TTL_S = 6.0


class LeaseKeeper:
    """Holds, renews and takes the leases of ``sources`` (a lease key per source)."""

    def __init__(
        self,
        redis: Redis,
        key_of: Callable[[str], str],
        sources: Sequence[str],
        *,
        ttl_s: float = DEFAULT_TTL_S,
        instance: str | None = None,
    ) -> None:
        self.redis = redis
        self.key_of = key_of
        self.sources = list(sources)
        self.ttl_ms = int(ttl_s * 1000)
        self.instance = instance or uuid.uuid4().hex
        self.held: set[str] = set()
        self._changed = asyncio.Condition()

    async def tick(self) -> None:
        """Renew what we hold, take what is free; a Redis error drops our claims (another may take them)."""
        now_held: set[str] = set()
        why = "another process polls it"
        try:
            flags = (
                await self.redis.eval(
                    _ACQUIRE, len(self.sources), *map(self.key_of, self.sources), self.instance, self.ttl_ms
                )
                if self.sources
                else []
            )
            now_held = {source for source, flag in zip(self.sources, flags, strict=True) if flag}
        except Exception as e:  # Redis down or frozen: stop polling rather than risk a second poller
            why = f"Redis unreachable ({type(e).__name__}); polling paused"
            now_held = set()
        for source in sorted(now_held - self.held):
            log.info("source=%s lease taken: this process polls it", source)
        lost = sorted(self.held - now_held)
        if lost:
            log.warning("leases lost for %s: %s", ", ".join(lost), why)
        async with self._changed:
            self.held = now_held
            self._changed.notify_all()

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ttl/3 until ``stop``; then hand every lease back."""
        try:
            while not stop.is_set():
                await self.tick()
                try:
                    await asyncio.wait_for(stop.wait(), self.ttl_ms / 3000)
                except TimeoutError:
                    pass
        finally:
            await self.release()

    async def release(self) -> None:
        for source in list(self.held):
            try:
                await self.redis.eval(_RELEASE, 1, self.key_of(source), self.instance)
            except Exception as e:  # the TTL frees it anyway
                log.warning("source=%s lease not released (%s)", source, e)
        async with self._changed:
            self.held = set()
            self._changed.notify_all()

    async def wait_held(self, source: str) -> None:
        """Return once this process holds ``source``'s lease."""
        async with self._changed:
            await self._changed.wait_for(lambda: source in self.held)

    async def wait_lost(self, source: str) -> None:
        """Return once this process no longer holds ``source``'s lease."""
        async with self._changed:
            await self._changed.wait_for(lambda: source not in self.held)

    async def still_held(self, source: str) -> bool:
        """Ask Redis whether the lease is still ours (right before writing a poll's answer)."""
        raw = await self.redis.get(self.key_of(source))
        return raw is not None and (raw.decode() if isinstance(raw, bytes) else str(raw)) == self.instance

    def polling(self, source: str, step: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """``step`` run only while this process holds ``source``'s lease (waits for it otherwise)."""

        async def guarded() -> T:
            await self.wait_held(source)
            return await step()

        return guarded


async def _until(job: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``job`` until it returns (True) or ``stop`` is set first (False)."""
    task = asyncio.ensure_future(job)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopped):
            t.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    return task.done() and not task.cancelled() and task.exception() is None


async def while_leased(
    keeper: LeaseKeeper,
    name: str,
    begin: Callable[[], Awaitable[object]],
    end: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
) -> None:
    """Do ``begin`` while this process holds ``name``'s lease and ``end`` when it loses it, until ``stop``.

    On the way out ``end`` runs before the lease is handed back, so a standby never overlaps.
    """
    keeper_stop = asyncio.Event()
    runner = asyncio.create_task(keeper.run(keeper_stop))
    active = False
    try:
        while not stop.is_set():
            if not await _until(keeper.wait_held(name), stop):
                break
            await begin()
            active = True
            if not await _until(keeper.wait_lost(name), stop):
                break
            await end()
            active = False
    finally:
        if active:
            await end()
        keeper_stop.set()
        await runner
