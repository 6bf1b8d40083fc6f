"""Settings from a TOML file plus environment variables, validated at start-up.

A wrong setting raises ``ConfigError`` naming the key, the bad value and what is accepted.
Secrets (tokens, API keys) may come from the environment so they never sit in a file;
they are kept in ``Secret`` so that a repr or a log line never shows them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bot.stream_settings import StreamSettings, parse_streams
from core.alerts.rules import parse_duration, parse_rule
from core.charts.service import ChartSettings
from core.metrics.base import Metric
from core.metrics.registry import Registry, metric_classes
from core.quotas import QuotaSettings
from core.redaction import safe_url, scrub
from core.reply import UserError
from watchers.venues.adapters import ADAPTERS, summary
from watchers.venues.common import PARTS
from watchers.venues.streams import LIQUIDATION_VENUES

SUPPORTED_VENUES = tuple(ADAPTERS)  # every venue an adapter serves
DEFAULT_VENUES = ("binanceusdm", "binancecoinm", "okx", "bybit", "deribit")


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the key and what is accepted."""


class Secret:
    """A string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    __str__ = __repr__


@dataclass(frozen=True)
class RedisSettings:
    url: str = ""  # empty: start the embedded Redis
    data_dir: str = "data"
    key_prefix: str = "mkt"


@dataclass(frozen=True)
class TelegramSettings:
    token: Secret = field(default_factory=lambda: Secret(""))
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    poll_timeout_s: float = 30.0


@dataclass(frozen=True)
class DiscordSettings:
    token: Secret = field(default_factory=lambda: Secret(""))
    application_id: int | None = None
    guild_ids: tuple[int, ...] = ()


PROVIDERS = ("coinmetrics", "glassnode", "cryptoquant")


@dataclass(frozen=True)
class FlowSettings:
    providers: tuple[str, ...] = ("coinmetrics",)
    assets: tuple[str, ...] = ("BTC", "ETH")
    poll_interval_s: float = 3600.0
    days: int = 45
    publication_lag_h: float = 4.0
    glassnode_api_key: Secret = field(default_factory=lambda: Secret(""))
    cryptoquant_api_key: Secret = field(default_factory=lambda: Secret(""))
    base_urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsoleSettings:
    enabled: str = "auto"  # "auto" | "on" | "off"


@dataclass(frozen=True)
class WatcherSettings:
    venues: tuple[str, ...] = DEFAULT_VENUES
    poll_interval_s: float = 30.0
    markets_refresh_s: float = 3600.0
    request_timeout_s: float = 10.0
    max_backoff_s: float = 300.0
    stale_after_s: float = 180.0  # rows older than this are marked * in replies and leave every figure
    funding_info_refresh_s: float = 300.0  # binance, bitget: re-read funding intervals at least this often
    oi_assets: tuple[str, ...] = ("BTC", "ETH", "SOL")  # open interest on venues that need a request per contract
    rest_base_urls: dict[str, str] = field(default_factory=dict)
    venue_poll_interval_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HistorySettings:
    retention_days: float = 35.0
    step_s: float = 300.0
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL")  # "*" keeps history for every asset


DEFAULT_RULES = (
    "flows btc netflow above 5000",
    "funding btc above 0.1%",
    "funding btc below -0.05%",
    "basis btc above 40%",
    "funding eth above 0.1%",
    "basis eth above 40%",
)


@dataclass(frozen=True)
class AlertSettings:
    telegram_admins: frozenset[str] = frozenset()
    discord_admins: frozenset[str] = frozenset()
    default_cooldown_s: int = 3600
    default_rules: tuple[str, ...] = DEFAULT_RULES
    claim_idle_s: float = 60.0
    telegram_rate_per_s: float = 28.0
    discord_rate_per_s: float = 45.0


@dataclass(frozen=True)
class ObservabilitySettings:
    port: int | None = None  # None: 9108, except in the console mode (off); 0: off
    host: str = "0.0.0.0"  # a container's metrics port is scraped from outside


@dataclass(frozen=True)
class ReplicaSettings:
    lease_ttl_s: float = 6.0  # a dead process's sources (and Telegram poller) move after at most this long


@dataclass(frozen=True)
class Settings:
    redis: RedisSettings = field(default_factory=RedisSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    flows: FlowSettings = field(default_factory=FlowSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    watchers: WatcherSettings = field(default_factory=WatcherSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    charts: ChartSettings = field(default_factory=ChartSettings)
    streams: StreamSettings = field(default_factory=StreamSettings)
    # each metric's section ([funding], [basis], [oi], ...): the keys its module declares, defaults filled in
    metrics: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {cls.name: {s.key: s.default for s in cls.settings_spec} for cls in metric_classes()}
    )
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)
    log_level: str = "INFO"
    unknown_venues: tuple[str, ...] = ()  # named in [watchers] venues but served by no adapter: reported, not polled

    def registry(self) -> Registry:
        """The metrics of this deployment, configured from their sections."""
        return Registry(cls(self.metrics.get(cls.name)) for cls in metric_classes())

    def sources(self, registry: Registry) -> dict[str, tuple[str, ...]]:
        """Metric -> the sources that serve it here: flow providers for flows, the watched venues whose
        adapter serves the metric otherwise (no basis from a venue without dated futures); a metric
        only some venues can serve (gamma: deribit) keeps those; an overview (/summary) has none."""
        return {
            m.name: ()
            if m.overview
            else self.flows.providers
            if m.source_word == "provider"
            else tuple(v for v in self.venues_serving(m.name) if v in m.fixed_sources)
            if m.fixed_sources
            else self.venues_serving(m.name)
            for m in registry
        }

    def streamed_venues(self) -> tuple[str, ...]:
        """Watched venues that stream; a venue whose REST host is overridden streams only with its ws host given."""
        s, w = self.streams, self.watchers
        if not s.enabled:
            return ()
        return tuple(v for v in w.venues if v in s.venues and (v not in w.rest_base_urls or v in s.ws_base_urls))

    def venues_serving(self, metric: str) -> tuple[str, ...]:
        if metric == "liqs":  # only the venues' liquidation streams feed it
            if not self.streams.liquidations:
                return ()
            return tuple(v for v in self.streamed_venues() if v in LIQUIDATION_VENUES)
        if metric not in PARTS:  # a metric the venue polls do not produce (streams, derived metrics)
            return self.watchers.venues
        return tuple(v for v in self.watchers.venues if metric in ADAPTERS[v].metrics())

    def venue_notes(self) -> dict[str, str]:
        """Venue -> what it serves and what it does not (for /status), unknown venues included."""
        return {v: summary(v) for v in (*self.watchers.venues, *self.unknown_venues)}


# --- validation helpers ----------------------------------------------------------------


def _bad(key: str, value: Any, accepted: str) -> ConfigError:
    return ConfigError(f"config {key} = {scrub(repr(value))} is not accepted: expected {accepted}")


def _num(d: dict[str, Any], section: str, key: str, default: float, lo: float, hi: float) -> float:
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise _bad(f"{section}.{key}", v, f"a number from {lo:g} to {hi:g}")
    return float(v)


def _text(d: dict[str, Any], section: str, key: str, default: str) -> str:
    if key not in d:
        return default
    v = d[key]
    if not isinstance(v, str):
        raise _bad(f"{section}.{key}", v, "a string")
    return v


def _url(d: dict[str, Any], section: str, key: str, default: str, schemes: tuple[str, ...]) -> str:
    v = _text(d, section, key, default)
    if v == "" and default == "":
        return v
    p = urlparse(v)
    if p.scheme not in schemes or not p.netloc:
        raise _bad(f"{section}.{key}", v, f"a {'/'.join(schemes)} URL")
    return v


def _section(raw: dict[str, Any], name: str, known: set[str]) -> dict[str, Any]:
    d = raw.get(name, {})
    if not isinstance(d, dict):
        raise _bad(name, d, "a table")
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"config [{name}] has unknown key(s) {sorted(unknown)}: accepted keys are {sorted(known)}")
    return d


def _venues(d: dict[str, Any], key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(known venues, unknown names): a name no adapter serves is reported and skipped, not fatal."""
    v = d.get(key, list(DEFAULT_VENUES))
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _bad(f"watchers.{key}", v, f"a non-empty list from {list(SUPPORTED_VENUES)}")
    names = tuple(dict.fromkeys(v))
    known = tuple(x for x in names if x in SUPPORTED_VENUES)
    if not known:
        raise _bad(f"watchers.{key}", v, f"a non-empty list from {list(SUPPORTED_VENUES)}")
    return known, tuple(x for x in names if x not in SUPPORTED_VENUES)


def _venue_map(d: dict[str, Any], key: str, kind: str) -> dict[str, Any]:
    m = d.get(key, {})
    if not isinstance(m, dict):
        raise _bad(f"watchers.{key}", m, "a table of venue = value")
    for venue, value in m.items():
        if venue not in SUPPORTED_VENUES:
            raise _bad(f"watchers.{key}.{venue}", value, f"a venue from {list(SUPPORTED_VENUES)}")
        if kind == "url":
            p = urlparse(value) if isinstance(value, str) else None
            if p is None or p.scheme not in ("http", "https") or not p.netloc:
                raise _bad(f"watchers.{key}.{venue}", value, "an http(s) base URL such as https://relay.example:8443")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 86_400:
            raise _bad(f"watchers.{key}.{venue}", value, "seconds from 1 to 86400")
    return dict(m)


def parse_settings(raw: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    """Validate a parsed TOML document (and the environment) into Settings."""
    env = dict(os.environ) if env is None else env
    classes = metric_classes()
    top_known = {
        "redis",
        "telegram",
        "discord",
        "flows",
        "console",
        "watchers",
        "history",
        "alerts",
        "log_level",
        "quotas",
        "observability",
        "replicas",
        "charts",
        "streams",
        *(cls.name for cls in classes),
    }
    unknown = set(raw) - top_known
    if unknown:
        raise ConfigError(f"config has unknown section(s) {sorted(unknown)}: accepted are {sorted(top_known)}")

    r = _section(raw, "redis", {"url", "data_dir", "key_prefix"})
    redis_url = env.get("REDIS_URL") or _text(r, "redis", "url", RedisSettings.url)
    if redis_url and urlparse(redis_url).scheme not in ("redis", "rediss", "unix", "redis+sentinel"):
        raise _bad(
            "redis.url",
            safe_url(redis_url),
            "a redis://, rediss://, unix:// or "
            "redis+sentinel://host:port[,host:port]/mastername URL, or empty for the embedded Redis",
        )
    prefix = _text(r, "redis", "key_prefix", RedisSettings.key_prefix)
    if not prefix or ":" in prefix:
        raise _bad("redis.key_prefix", prefix, "a non-empty name without ':'")
    redis = RedisSettings(
        url=redis_url, data_dir=_text(r, "redis", "data_dir", RedisSettings.data_dir), key_prefix=prefix
    )

    t = _section(raw, "telegram", {"token", "base_url", "base_file_url", "poll_timeout_s"})
    token = env.get("TELEGRAM_BOT_TOKEN") or _text(t, "telegram", "token", "")
    if token and (":" not in token or len(token) < 10):
        raise ConfigError(
            "telegram.token (or TELEGRAM_BOT_TOKEN) does not look like a bot token: "
            "expected the '123456:ABC...' string from @BotFather"
        )
    telegram = TelegramSettings(
        token=Secret(token),
        base_url=_url(t, "telegram", "base_url", TelegramSettings.base_url, ("http", "https")),
        base_file_url=_url(t, "telegram", "base_file_url", TelegramSettings.base_file_url, ("http", "https")),
        poll_timeout_s=_num(t, "telegram", "poll_timeout_s", TelegramSettings.poll_timeout_s, 0, 120),
    )

    discord = _discord(raw, env)
    flows = _flows(raw, env)

    c = _section(raw, "console", {"enabled"})
    enabled = _text(c, "console", "enabled", ConsoleSettings.enabled)
    if enabled not in ("auto", "on", "off"):
        raise _bad("console.enabled", enabled, '"auto", "on" or "off"')

    w = _section(
        raw,
        "watchers",
        {
            "venues",
            "poll_interval_s",
            "markets_refresh_s",
            "request_timeout_s",
            "max_backoff_s",
            "stale_after_s",
            "funding_info_refresh_s",
            "oi_assets",
            "rest_base_urls",
            "venue_poll_interval_s",
        },
    )
    venues, unknown_venues = _venues(w, "venues")
    watchers = WatcherSettings(
        venues=venues,
        poll_interval_s=_num(w, "watchers", "poll_interval_s", WatcherSettings.poll_interval_s, 0.05, 86_400),
        markets_refresh_s=_num(w, "watchers", "markets_refresh_s", WatcherSettings.markets_refresh_s, 1, 7 * 86_400),
        request_timeout_s=_num(w, "watchers", "request_timeout_s", WatcherSettings.request_timeout_s, 0.1, 120),
        max_backoff_s=_num(w, "watchers", "max_backoff_s", WatcherSettings.max_backoff_s, 0.1, 3600),
        stale_after_s=_num(w, "watchers", "stale_after_s", WatcherSettings.stale_after_s, 1, 86_400),
        funding_info_refresh_s=_num(
            w, "watchers", "funding_info_refresh_s", WatcherSettings.funding_info_refresh_s, 10, 86_400
        ),
        oi_assets=_tickers(w, "watchers", "oi_assets", WatcherSettings.oi_assets),
        rest_base_urls=_venue_map(w, "rest_base_urls", "url"),
        venue_poll_interval_s=_venue_map(w, "venue_poll_interval_s", "seconds"),
    )

    h = _section(raw, "history", {"retention_days", "step_s", "assets"})
    assets = h.get("assets", list(HistorySettings.assets))
    if not isinstance(assets, list) or not all(isinstance(a, str) and a for a in assets):
        raise _bad("history.assets", assets, 'a list of tickers such as ["BTC", "ETH"], or ["*"] for all')
    history = HistorySettings(
        retention_days=_num(h, "history", "retention_days", HistorySettings.retention_days, 1, 3650),
        step_s=_num(h, "history", "step_s", HistorySettings.step_s, 1, 86_400),
        assets=tuple(a.upper() for a in assets),
    )

    metrics = {cls.name: _metric_options(raw, cls, FLOW_KEYS if cls.name == "flows" else set()) for cls in classes}
    registry = Registry(cls(metrics[cls.name]) for cls in classes)
    streams = parse_streams(raw, _bad)
    sources = Settings(flows=flows, watchers=watchers, streams=streams).sources(registry)
    alerts = _alerts(raw, registry, sources)
    level = raw.get("log_level", Settings.log_level)
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _bad("log_level", level, '"DEBUG", "INFO", "WARNING" or "ERROR"')
    return Settings(
        redis=redis,
        telegram=telegram,
        discord=discord,
        flows=flows,
        console=ConsoleSettings(enabled=enabled),
        watchers=watchers,
        history=history,
        alerts=alerts,
        charts=_charts(raw),
        metrics=metrics,
        log_level=level,
        unknown_venues=unknown_venues,
        quotas=_quotas(raw),
        observability=_observability(raw),
        replicas=ReplicaSettings(
            lease_ttl_s=_num(_section(raw, "replicas", {"lease_ttl_s"}), "replicas", "lease_ttl_s", 6.0, 1, 60)
        ),
        streams=streams,
    )


def _charts(raw: dict[str, Any]) -> ChartSettings:
    c = _section(raw, "charts", {"workers", "pool", "cache_s", "max_pending", "files_dir"})
    pool = _text(c, "charts", "pool", ChartSettings.pool)
    if pool not in ("process", "thread"):
        raise _bad("charts.pool", pool, '"process" (charts drawn in worker processes) or "thread"')
    return ChartSettings(
        workers=int(_num(c, "charts", "workers", ChartSettings.workers, 1, 16)),
        pool=pool,
        cache_s=_num(c, "charts", "cache_s", ChartSettings.cache_s, 0, 3600),
        max_pending=int(_num(c, "charts", "max_pending", ChartSettings.max_pending, 1, 256)),
        files_dir=_text(c, "charts", "files_dir", ChartSettings.files_dir),
    )


def _tickers(d: dict[str, Any], section: str, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    v = d.get(key, list(default))
    if not isinstance(v, list) or not all(isinstance(a, str) and a.isalnum() for a in v):
        raise _bad(f"{section}.{key}", v, 'a list of tickers such as ["BTC", "ETH"]')
    return tuple(a.upper() for a in v)


def _metric_options(raw: dict[str, Any], cls: type[Metric], also_known: set[str]) -> dict[str, Any]:
    """A metric's section: each key its module declares, checked by the key's own parser."""
    spec = {s.key: s for s in cls.settings_spec}
    d = _section(raw, cls.name, set(spec) | also_known)
    out = {}
    for key, setting in spec.items():
        if key not in d:
            out[key] = setting.default
            continue
        try:
            out[key] = setting.parse(d[key])
        except (UserError, ValueError, TypeError) as e:
            raise _bad(f"{cls.name}.{key}", d[key], str(e) or setting.doc) from None
    return out


def _quotas(raw: dict[str, Any]) -> QuotaSettings:
    q = _section(raw, "quotas", {"max_subscriptions_per_chat", "max_rules_per_chat"})
    return QuotaSettings(
        max_subscriptions_per_chat=int(_num(q, "quotas", "max_subscriptions_per_chat", 60, 1, 10_000)),
        max_rules_per_chat=int(_num(q, "quotas", "max_rules_per_chat", 50, 1, 10_000)),
    )


def _observability(raw: dict[str, Any]) -> ObservabilitySettings:
    o = _section(raw, "observability", {"port", "host"})
    port = o.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise _bad("observability.port", port, "a TCP port from 1 to 65535, or 0 for off")
    return ObservabilitySettings(port=port, host=_text(o, "observability", "host", "0.0.0.0"))


def _int_list(d: dict[str, Any], key: str, what: str) -> tuple[int, ...]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
        raise _bad(key, v, f"a list of numeric {what}, e.g. [123456789012345678]")
    return tuple(v)


def _discord(raw: dict[str, Any], env: dict[str, str]) -> DiscordSettings:
    d = _section(raw, "discord", {"token", "application_id", "guild_ids"})
    token = env.get("DISCORD_BOT_TOKEN") or _text(d, "discord", "token", "")
    if token and (len(token) < 20 or " " in token):
        raise ConfigError(
            "discord.token (or DISCORD_BOT_TOKEN) does not look like a bot token: expected the token "
            "from the Bot tab of the Discord developer portal"
        )
    app_id = d.get("application_id")
    if app_id is not None and (isinstance(app_id, bool) or not isinstance(app_id, int) or app_id <= 0):
        raise _bad("discord.application_id", app_id, "the numeric application id, or leave it out")
    return DiscordSettings(
        token=Secret(token), application_id=app_id, guild_ids=_int_list(d, "guild_ids", "server ids")
    )


FLOW_KEYS = {
    "providers",
    "assets",
    "poll_interval_s",
    "days",
    "publication_lag_h",
    "glassnode_api_key",
    "cryptoquant_api_key",
    "base_urls",
}


def _flows(raw: dict[str, Any], env: dict[str, str]) -> FlowSettings:
    f = _section(
        raw, "flows", FLOW_KEYS | {s.key for cls in metric_classes() if cls.name == "flows" for s in cls.settings_spec}
    )
    providers = f.get("providers", list(FlowSettings.providers))
    if not isinstance(providers, list) or any(p not in PROVIDERS for p in providers):
        raise _bad("flows.providers", providers, f"a list from {list(PROVIDERS)} (empty for none)")
    assets = f.get("assets", list(FlowSettings.assets))
    if not isinstance(assets, list) or not all(isinstance(a, str) and a.isalnum() for a in assets):
        raise _bad("flows.assets", assets, 'a list of tickers such as ["BTC", "ETH"]')
    urls = f.get("base_urls", {})
    if not isinstance(urls, dict):
        raise _bad("flows.base_urls", urls, "a table of provider = URL")
    for name, url in urls.items():
        p = urlparse(url) if isinstance(url, str) else None
        if name not in PROVIDERS or p is None or p.scheme not in ("http", "https") or not p.netloc:
            raise _bad(f"flows.base_urls.{name}", url, f"an http(s) URL for one of {list(PROVIDERS)}")
    gn = env.get("GLASSNODE_API_KEY") or _text(f, "flows", "glassnode_api_key", "")
    cq = env.get("CRYPTOQUANT_API_KEY") or _text(f, "flows", "cryptoquant_api_key", "")
    days = f.get("days", FlowSettings.days)
    if isinstance(days, bool) or not isinstance(days, int) or not 31 <= days <= 400:
        raise _bad("flows.days", days, "a whole number of days from 31 to 400 (30-day sums need 30)")
    return FlowSettings(
        providers=tuple(dict.fromkeys(providers)),
        assets=tuple(a.upper() for a in assets),
        poll_interval_s=_num(f, "flows", "poll_interval_s", FlowSettings.poll_interval_s, 1, 86_400),
        days=days,
        publication_lag_h=_num(f, "flows", "publication_lag_h", FlowSettings.publication_lag_h, 0, 72),
        glassnode_api_key=Secret(gn),
        cryptoquant_api_key=Secret(cq),
        base_urls=dict(urls),
    )


def _alerts(raw: dict[str, Any], registry: Registry, sources: dict[str, tuple[str, ...]]) -> AlertSettings:
    a = _section(
        raw,
        "alerts",
        {
            "telegram_admins",
            "discord_admins",
            "default_cooldown",
            "default_rules",
            "claim_idle_s",
            "telegram_rate_per_s",
            "discord_rate_per_s",
        },
    )

    def ids(key: str) -> frozenset[str]:
        v = a.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise _bad(f"alerts.{key}", v, "a list of numeric user ids, e.g. [123456789]")
        return frozenset(str(x) for x in v)

    def convert(key: str, default: Any, fn: Any) -> Any:
        if key not in a:
            return default
        try:
            return fn(a[key])
        except (UserError, AttributeError, TypeError) as e:
            raise _bad(f"alerts.{key}", a[key], str(e) if isinstance(e, UserError) else "a string") from None

    cooldown = convert(
        "default_cooldown", AlertSettings.default_cooldown_s, lambda v: parse_duration(v, "cooldown", lo_s=0)
    )
    rules = a.get("default_rules", list(DEFAULT_RULES))
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise _bad("alerts.default_rules", rules, 'a list of rule texts such as "funding btc above 0.1%"')
    for i, text in enumerate(rules):
        try:
            parse_rule(
                text.split(),
                registry=registry,
                sources=sources,
                rule_id="x",
                default_cooldown_s=cooldown,
                now_ms=0,
                created_by="config",
            )
        except UserError as e:
            raise ConfigError(f"config alerts.default_rules[{i}] = {text!r} is not accepted: {e}") from None
    return AlertSettings(
        telegram_admins=ids("telegram_admins"),
        discord_admins=ids("discord_admins"),
        default_cooldown_s=cooldown,
        default_rules=tuple(rules),
        claim_idle_s=_num(a, "alerts", "claim_idle_s", AlertSettings.claim_idle_s, 0.05, 3600),
        telegram_rate_per_s=_num(a, "alerts", "telegram_rate_per_s", AlertSettings.telegram_rate_per_s, 0.1, 1000),
        discord_rate_per_s=_num(a, "alerts", "discord_rate_per_s", AlertSettings.discord_rate_per_s, 0.1, 1000),
    )


def load_settings(path: str | Path | None, env: dict[str, str] | None = None) -> Settings:
    """Read and validate the TOML file at ``path`` (or defaults when None)."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"config file {p} does not exist") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from e
    return parse_settings(raw, env)
