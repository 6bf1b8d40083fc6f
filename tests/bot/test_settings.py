from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_valid_and_matches_defaults() -> None:
    from_file = load_settings(ROOT / "config.example.toml", env={})
    defaults = parse_settings({}, env={})
    assert repr(from_file) == repr(defaults)


def test_env_secrets_win_and_never_print() -> None:
    s = parse_settings({"telegram": {"token": "1:file-token-xx"}},
                       env={"TELEGRAM_BOT_TOKEN": "42:env-secret-token", "REDIS_URL": "redis://h:1/0"})
    assert s.telegram.token.get() == "42:env-secret-token"
    assert "env-secret" not in repr(s) and "env-secret" not in str(s.telegram)
    assert s.redis.url == "redis://h:1/0"


@pytest.mark.parametrize(("raw", "fragments"), [
    ({"watchers": {"poll_interval_s": "fast"}}, ["watchers.poll_interval_s", "'fast'", "a number from"]),
    ({"watchers": {"venues": ["binance", "okx"]}}, ["watchers.venues", "binanceusdm"]),
    ({"watchers": {"rest_base_urls": {"okx": "ftp://x"}}}, ["watchers.rest_base_urls.okx", "http(s) base URL"]),
    ({"watchers": {"rest_base_urls": {"kraken": "http://x"}}}, ["watchers.rest_base_urls.kraken", "a venue from"]),
    ({"telegram": {"base_url": "api.telegram.org"}}, ["telegram.base_url", "http/https URL"]),
    ({"telegram": {"token": "nocolon"}}, ["telegram.token", "@BotFather"]),
    ({"redis": {"url": "http://localhost"}}, ["redis.url", "redis://"]),
    ({"console": {"enabled": "yes"}}, ["console.enabled", '"auto"']),
    ({"watchers": {"pol_interval_s": 5}}, ["unknown key", "pol_interval_s", "poll_interval_s"]),
    ({"wachers": {}}, ["unknown section", "wachers"]),
    ({"basis": {"min_days_to_expiry": -1}}, ["basis.min_days_to_expiry", "from 0 to 90"]),
])
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
