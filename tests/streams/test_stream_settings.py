"""The [streams] section: defaults, one-line errors, and which venues stream."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from bot.app import Wiring
from bot.settings import ConfigError, parse_settings
from bot.streams import streamed_venues


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"venues": ["gate"]}, "streams.venues"),
        ({"basis": 1}, "true or false"),
        ({"stall_after_s": 0}, "streams.stall_after_s"),
        ({"enabled": "yes"}, "true or false"),
        ({"ws_base_urls": {"okx": "https://x"}}, "streams.ws_base_urls.okx"),
        ({"colour": 1}, "keys from"),
    ],
)
def test_bad_stream_settings_name_the_key(section: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings({"streams": section}, env={})
    assert needle in str(e.value) and "\n" not in str(e.value)


def _wiring(raw: dict[str, Any]) -> Wiring:
    settings = parse_settings(raw, env={})
    fields: dict[str, Any] = {name: None for name in Wiring.__dataclass_fields__}
    fields.update(settings=settings, stack=contextlib.AsyncExitStack(), streams=[], venue_clients={}, groups=[])
    return Wiring(**fields)


def test_a_venue_with_an_overridden_rest_host_streams_only_with_its_ws_host() -> None:
    assert streamed_venues(_wiring({})) == ["binanceusdm", "binancecoinm", "okx", "bybit", "deribit"]
    local = {
        "watchers": {"rest_base_urls": {"okx": "http://127.0.0.1:1", "bybit": "http://127.0.0.1:1"}},
        "streams": {"ws_base_urls": {"okx": "ws://127.0.0.1:2/okx"}},
    }
    assert streamed_venues(_wiring(local)) == ["binanceusdm", "binancecoinm", "okx", "deribit"]
    assert streamed_venues(_wiring({"streams": {"enabled": False}})) == []


def test_liqs_rules_name_only_venues_that_stream_liquidations() -> None:
    settings = parse_settings({}, env={})
    assert settings.sources(settings.registry())["liqs"] == ("binanceusdm", "binancecoinm", "okx", "bybit")
    with pytest.raises(ConfigError) as e:
        parse_settings({"alerts": {"default_rules": ["liqs btc above 1m 1h venue deribit"]}}, env={})
    assert "venue 'deribit' is not accepted for liqs" in str(e.value)
    off = parse_settings({"streams": {"enabled": False}}, env={})
    assert off.sources(off.registry())["liqs"] == ()
