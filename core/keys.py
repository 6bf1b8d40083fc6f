"""Every Redis key the project uses, built in one place behind a version prefix.

Format: ``{prefix}:{version}:{kind}:...``; assets are upper case, venues are ccxt ids
(which contain no ``:``). Symbols never appear in key names (they contain ``:`` and ``/``);
they live in hash fields and JSON values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder; ``prefix`` lets several deployments or test runs share one Redis."""

    prefix: str = "mkt"
    version: str = "v1"

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.version}"

    # market data ------------------------------------------------------------------------
    def latest(self, metric: str, asset: str, venue: str) -> str:
        """HASH symbol -> JSON sample; replaced whole on each successful poll of the venue."""
        return f"{self.base}:latest:{metric}:{asset}:{venue}"

    def history(self, metric: str, asset: str, venue: str) -> str:
        """ZSET scored by the venue's sample time in ms; members carry the symbol; trimmed by age."""
        return f"{self.base}:hist:{metric}:{asset}:{venue}"

    def assets(self, metric: str) -> str:
        """HASH asset -> comma-separated venues that list it (the universe for input checks)."""
        return f"{self.base}:assets:{metric}"

    def source(self, venue: str) -> str:
        """HASH of one source's health: last success, last error, request counters."""
        return f"{self.base}:source:{venue}"

    def sources(self) -> str:
        """SET of source names that have reported health."""
        return f"{self.base}:sources"

    def heartbeat(self, role: str) -> str:
        """STRING with TTL written by a running process role."""
        return f"{self.base}:health:{role}"
