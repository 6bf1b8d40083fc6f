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
        """HASH instrument -> JSON sample (flows: day -> row); a poll replaces the venue's set, a stream upserts."""
        return f"{self.base}:latest:{metric}:{asset}:{venue}"

    def history(self, metric: str, asset: str, venue: str) -> str:
        """ZSET scored by the venue's sample time in ms; members carry the symbol; trimmed by age."""
        return f"{self.base}:hist:{metric}:{asset}:{venue}"

    def history_tier(self, tier: str, metric: str, asset: str, venue: str) -> str:
        """ZSET like ``history`` with one point per series per ``tier`` ('1h', '6h'), kept longer: long charts."""
        return f"{self.base}:hist{tier}:{metric}:{asset}:{venue}"

    def venue_assets(self, metric: str, venue: str) -> str:
        """SET of the assets a venue's last poll reported for a metric (what the next poll replaces)."""
        return f"{self.base}:vassets:{metric}:{venue}"

    def assets(self, metric: str) -> str:
        """HASH asset -> comma-separated venues that list it (the universe for input checks)."""
        return f"{self.base}:assets:{metric}"

    def source(self, venue: str) -> str:
        """HASH of one source's health: last success, last error, request counters."""
        return f"{self.base}:source:{venue}"

    def sources(self) -> str:
        """SET of source names that have reported health."""
        return f"{self.base}:sources"

    def backfill(self, job: str) -> str:
        """HASH part ('funding|okx|BTC/USDT:USDT', 'flows|coinmetrics') -> ms up to which a backfill job stored it."""
        return f"{self.base}:backfill:{job}"

    def liq_events(self, asset: str, venue: str) -> str:
        """ZSET of one venue's liquidations of an asset (JSON members, scored by the venue's time in ms).

        A member is the event itself, so a frame replayed after a reconnect adds nothing (ZADD NX).
        """
        return f"{self.base}:liqev:{asset}:{venue}"

    def liq_sums(self, asset: str, venue: str) -> str:
        """HASH of ``liq_events``' USD per side and count per minute and per hour ('<minute>:long', 'h<hour>:n').

        Written in one script with the events, so it always sums exactly the ZSET; the windows read it
        (layout in ``core.liq_scripts``).
        """
        return f"{self.base}:liqsum:{asset}:{venue}"

    def stream(self, name: str) -> str:
        """HASH of one websocket stream's health: state, messages, rate, last message, reconnects."""
        return f"{self.base}:stream:{name}"

    def streams(self) -> str:
        """SET of the stream names that have reported health."""
        return f"{self.base}:streams"

    def discord_commands(self) -> str:
        """STRING: hash of the slash-command definitions last synced, so start-up syncs only on change."""
        return f"{self.base}:discord:commands"

    def lease(self, name: str) -> str:
        """STRING with TTL: the id of the one process doing ``name`` now (``market:okx``, ``telegram-poller``)."""
        return f"{self.base}:lease:{name}"

    def heartbeat(self, role: str) -> str:
        """STRING with TTL written by a running process role."""
        return f"{self.base}:health:{role}"

    # alerts ------------------------------------------------------------------------------
    def rules(self) -> str:
        """HASH rule id -> rule JSON."""
        return f"{self.base}:rules"

    def rules_global(self) -> str:
        """SET of the ids of global rules (the index /threshold list reads)."""
        return f"{self.base}:rules:global"

    def rules_topic(self, topic: str) -> str:
        """SET of the ids of global rules on one topic ('metric:ASSET')."""
        return f"{self.base}:rules:topic:{topic}"

    def rules_target(self, target: str) -> str:
        """SET of the ids of the rules one chat set for itself."""
        return f"{self.base}:rules:target:{target}"

    def rules_seq(self) -> str:
        """Counter for rule ids."""
        return f"{self.base}:rules:seq"

    def rules_version(self) -> str:
        """Counter bumped on every rule change; evaluators reload when it moves."""
        return f"{self.base}:rules:version"

    def rules_log(self) -> str:
        """LIST of JSON entries: who changed which rule, when (newest first, capped)."""
        return f"{self.base}:rules:log"

    def defaults_installed(self) -> str:
        """SET of default rule texts already installed once (a deleted default stays deleted)."""
        return f"{self.base}:rules:defaults"

    def evaluator_lease(self) -> str:
        """STRING with TTL: the process allowed to evaluate rules (one per deployment, so no alert is doubled)."""
        return f"{self.base}:alerts:lease"

    def alert_state(self) -> str:
        """HASH rule id -> 'mode:last_fired_ms' (armed/fired/side), so restarts neither re-fire nor forget."""
        return f"{self.base}:alertstate"

    def signal_history(self, metric: str, asset: str, selector: str) -> str:
        """ZSET of an aggregated signal ('ts|value' scored by ts ms) for change and z-score rules."""
        return f"{self.base}:sighist:{metric}:{asset}:{selector}"

    def alerts(self) -> str:
        """STREAM of fired alerts; one consumer group per platform."""
        return f"{self.base}:alerts"

    def sent(self, alert_id: str, target: str) -> str:
        """STRING per (alert, chat): 'pending:<consumer>' while in flight, then 'ok'/'gone'/'failed'."""
        return f"{self.base}:sent:{alert_id}:{target}"

    def subscribers(self, topic: str) -> str:
        """SET of targets ('tg:<chat id>', 'dc:<channel id>') subscribed to a topic 'metric:ASSET'."""
        return f"{self.base}:subs:{topic}"

    def chat_topics(self, target: str) -> str:
        """SET of topics one target subscribes to (reverse index for /alerts, 403 clean-up, migration)."""
        return f"{self.base}:chatsubs:{target}"

    def mute(self, target: str) -> str:
        """STRING with TTL: the target is muted until it expires."""
        return f"{self.base}:mute:{target}"

    def chart_prefs(self) -> str:
        """HASH target -> "on": chats whose alerts carry a chart (/alerts charts on)."""
        return f"{self.base}:chartprefs"

    def admins(self, platform: str) -> str:
        """SET of user ids made bot admins by /admin add (config admins are added to these)."""
        return f"{self.base}:admins:{platform}"

    # send pacing shared by the processes that send with one token -------------------------
    def pace_slot(self, platform: str) -> str:
        """STRING: the next free global send slot (Redis TIME seconds) for one platform's token."""
        return f"{self.base}:pace:{platform}:slot"

    def pace_lane(self, platform: str, lane: str) -> str:
        """ZSET of one chat's recent send times (Redis TIME seconds), expiring after the longest window."""
        return f"{self.base}:pace:{platform}:lane:{lane}"

    def pace_hold(self, platform: str, lane: str) -> str:
        """STRING with a TTL of a 429's retry_after: nothing goes to that chat, from any process, until it expires."""
        return f"{self.base}:pace:{platform}:hold:{lane}"
