"""The stream watchers' builder: one watcher per (venue, feed) the ``[streams]`` section enables."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from core.liquidations import LiquidationStore
from core.streams import StreamHealthStore
from watchers.streams import LiquidationSink, Sink, StreamConfig, StreamWatcher, TickSink
from watchers.venues.streams import StreamClient

if TYPE_CHECKING:
    from bot.app import Loop, Wiring


def streamed_venues(wr: Wiring) -> list[str]:
    """Watched venues that stream (see ``Settings.streamed_venues``)."""
    return list(wr.settings.streamed_venues())


def _holds(wr: Wiring, lease: str) -> bool:
    return lease in wr.leases.held


def stream_loops(wr: Wiring) -> list[Loop]:
    """Liquidations, funding and basis by websocket; each watcher reconnects on its own and reports to /status."""
    s, w = wr.settings.streams, wr.settings.watchers
    cfg = StreamConfig(
        stall_after_s=s.stall_after_s, reconnect_base_s=s.reconnect_base_s, max_backoff_s=s.max_backoff_s
    )
    health = StreamHealthStore(wr.redis, wr.keys)
    events = LiquidationStore(wr.redis, wr.keys)
    loops: list[Loop] = []
    for venue in streamed_venues(wr):
        wanted: list[tuple[str, Any]] = []
        for feed, on in (("liqs", s.liquidations), ("funding", s.funding), ("basis", s.basis)):
            metric = wr.registry.find(feed)
            if on and metric is not None:
                wanted.append((feed, metric))
        for feed, metric in wanted:
            client = StreamClient(
                venue,
                timeout_s=w.request_timeout_s,
                ping_interval_s=s.ping_interval_s,
                rest_base_url=w.rest_base_urls.get(venue),
                ws_base_url=s.ws_base_urls.get(venue),
                symbol_assets=s.symbol_assets,
                rest=wr.venue_clients.get(venue),
            )
            if feed not in client.feeds():
                continue
            wr.stack.push_async_callback(client.close)
            sink: Sink
            if feed == "liqs":
                sink = LiquidationSink(
                    venue,
                    events,
                    wr.store,
                    metric,
                    wr.evaluator.on_samples,
                    max_event_age_s=s.max_event_age_s,
                    refresh_s=s.window_refresh_s,
                )
            else:
                sink = TickSink(
                    venue,
                    wr.store,
                    metric,
                    wr.evaluator.on_samples,
                    refresh_s=s.funding_refresh_s,
                    price_tolerance=s.price_tolerance,
                    history_step_s=wr.settings.history.step_s,
                    history_assets=wr.settings.history.assets,
                )
            # the venue's poll lease: with data replicas, one process polls and streams each venue
            watcher = StreamWatcher(
                client, feed, sink, health, cfg, allowed=functools.partial(_holds, wr, f"market:{venue}")
            )
            wr.streams.append(watcher)
            loops.append(watcher.run)
    return loops
