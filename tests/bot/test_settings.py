from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_valid_and_matches_defaults() -> None:
    from_file = load_settings(ROOT / "config.example.toml", env={})
    defaults = parse_settings({}, env={})
    assert repr(from_file) == repr(defaults)


def test_example_config_documents_every_metric_and_watcher_key() -> None:
    import dataclasses
    import tomllib

    from bot.settings import WatcherSettings
    from core.metrics.registry import metric_classes

    example = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    for cls in metric_classes():  # a metric's section holds exactly the keys its module declares
        declared = {s.key for s in cls.settings_spec}
        assert declared <= set(example.get(cls.name, {})), cls.name
    assert {f.name for f in dataclasses.fields(WatcherSettings)} == set(example["watchers"])


def test_metric_sections_are_checked_by_their_metric() -> None:
    s = parse_settings({"funding": {"hysteresis": "0.02%"}, "oi": {"hysteresis": "5%"}}, env={})
    assert s.metrics["funding"]["hysteresis"] == pytest.approx(0.0002)
    assert s.registry().get("oi").default_hysteresis == pytest.approx(0.05)
    with pytest.raises(ConfigError, match=r"funding\.hysteresis"):
        parse_settings({"funding": {"hysteresis": "lots"}}, env={})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_settings({"oi": {"assets": ["BTC"]}}, env={})


def test_env_secrets_win_and_never_print() -> None:
    s = parse_settings(
        {"telegram": {"token": "1:file-token-xx"}},
        env={"TELEGRAM_BOT_TOKEN": "42:env-secret-token", "REDIS_URL": "redis://h:1/0"},
    )
    assert s.telegram.token.get() == "42:env-secret-token"
    assert "env-secret" not in repr(s) and "env-secret" not in str(s.telegram)
    assert s.redis.url == "redis://h:1/0"


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({"watchers": {"poll_interval_s": "fast"}}, ["watchers.poll_interval_s", "'fast'", "a number from"]),
        ({"watchers": {"venues": ["binance", "kraken"]}}, ["watchers.venues", "binanceusdm", "hyperliquid"]),
        ({"watchers": {"rest_base_urls": {"okx": "ftp://x"}}}, ["watchers.rest_base_urls.okx", "http(s) base URL"]),
        ({"watchers": {"rest_base_urls": {"kraken": "http://x"}}}, ["watchers.rest_base_urls.kraken", "a venue from"]),
        ({"telegram": {"base_url": "api.telegram.org"}}, ["telegram.base_url", "http/https URL"]),
        ({"telegram": {"token": "nocolon"}}, ["telegram.token", "@BotFather"]),
        ({"redis": {"url": "http://localhost"}}, ["redis.url", "redis://"]),
        ({"console": {"enabled": "yes"}}, ["console.enabled", '"auto"']),
        ({"watchers": {"pol_interval_s": 5}}, ["unknown key", "pol_interval_s", "poll_interval_s"]),
        ({"wachers": {}}, ["unknown section", "wachers"]),
        ({"basis": {"min_days_to_expiry": -1}}, ["basis.min_days_to_expiry", "from 0 to 90"]),
        ({"alerts": {"default_rules": ["oi btc above lots"]}}, ["alerts.default_rules[0]", "not an amount"]),
    ],
)
def test_bad_settings_name_key_value_and_accepted(raw: dict, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(raw, env={})
    for f in fragments:
        assert f in str(e.value)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[watchers\nvenues=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
