"""A feed's connections on their own: real pybit sockets against the simulator, no flusher, no Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ingest.config import FeedSettings
from ingest.connections import AssetConnections
from ingest.simulator import RunningSimulator
from ingest.snapshots import LatestSnapshots
from ingest.throttled_log import RateLimitedLog
from tests.ingest.conftest import poll


@pytest.fixture
def start_connections(
    simulator: RunningSimulator,
) -> Iterator[Callable[..., tuple[AssetConnections, LatestSnapshots]]]:
    """``start(**settings)``: BTC's connections to the simulator, their watchdog ticking every 50 ms."""
    stop = threading.Event()
    started: list[tuple[AssetConnections, threading.Thread]] = []

    def start(**changes: Any) -> tuple[AssetConnections, LatestSnapshots]:
        snapshots = LatestSnapshots()
        settings = FeedSettings(ws_url=simulator.ws_url, rest_url=simulator.rest_url, **changes)
        running = AssetConnections(
            asset="BTC",
            settings=settings,
            snapshots=snapshots,
            stop_event=stop,
            log=RateLimitedLog(logging.getLogger()),
        )

        def watchdog() -> None:
            while not stop.is_set():
                running.watch(time.monotonic())
                time.sleep(0.05)

        thread = threading.Thread(target=watchdog, daemon=True)
        thread.start()
        started.append((running, thread))
        return running, snapshots

    yield start
    stop.set()
    for running, thread in started:
        thread.join(timeout=5)
        running.close()


@pytest.fixture
def connections(start_connections) -> tuple[AssetConnections, LatestSnapshots]:
    return start_connections(topics_per_connection=150, silence_timeout=2.0, backoff_initial=0.1, backoff_max=0.5)


def test_it_spreads_topics_and_hands_every_contracts_ticker_over(simulator, connections) -> None:
    running, snapshots = connections
    symbols = simulator.live_symbols("BTC")[:400]
    running.assign(listed=symbols, delivered=[])
    poll(lambda: running.figures().subscribed == 400, timeout=15, message="every topic confirmed")
    figures = running.figures()
    assert figures.connections == figures.wanted == 3  # 150 + 150 + 100
    assert sorted(simulator.topics_per_connection()) == [100, 150, 150]

    seen: dict[str, int] = {}
    deadline = time.monotonic() + 5
    while len(seen) < 400 and time.monotonic() < deadline:
        seen.update((symbol, snapshot.ts) for symbol, snapshot in snapshots.take().items())
        time.sleep(0.1)
    assert set(seen) == set(symbols)
    assert running.figures().messages >= 400


def test_it_drops_delivered_topics_and_the_connection_they_emptied(simulator, connections) -> None:
    running, snapshots = connections
    symbols = simulator.live_symbols("BTC")[:200]
    running.assign(listed=symbols, delivered=[])
    poll(lambda: running.figures().subscribed == 200, timeout=15)
    running.assign(listed=[], delivered=symbols[150:])
    poll(lambda: simulator.topics_per_connection() == [150], timeout=10, message="the emptied socket is closed")
    assert running.figures().wanted == 1
    snapshots.take()
    time.sleep(0.5)
    assert set(snapshots.take()) <= set(symbols[:150])


def test_it_rebuilds_a_dropped_connection_with_its_topics(simulator, connections) -> None:
    running, _ = connections
    symbols = simulator.live_symbols("BTC")[:100]
    running.assign(listed=symbols, delivered=[])
    poll(lambda: running.figures().subscribed == 100, timeout=15)
    simulator.drop_connections()
    poll(lambda: running.figures().reconnects >= 1, timeout=10, message="the drop noticed")
    poll(lambda: running.figures().subscribed == 100, timeout=15, message="every topic back")
    assert sum(simulator.topics_per_connection()) == 100


def test_it_is_receiving_again_within_seconds_of_a_long_refusal_ending(simulator, start_connections) -> None:
    # The backoff a deployment runs (FeedSettings' defaults), over three sockets.
    running, _ = start_connections(topics_per_connection=100)
    symbols = simulator.live_symbols("BTC")[:300]
    running.assign(listed=symbols, delivered=[])
    poll(lambda: running.figures().subscribed == 300, timeout=15, message="every topic confirmed")

    refused_from = time.monotonic()
    simulator.refuse_connections(seconds=15)
    simulator.drop_connections()
    poll(lambda: running.figures().connections == 0, timeout=5, message="the drop noticed")
    time.sleep(max(0.0, refused_from + 15 - time.monotonic()))
    accepting_from = time.monotonic()
    messages = running.figures().messages

    poll(
        lambda: running.figures().subscribed == 300 and running.figures().messages > messages + 300,
        timeout=30,
        interval=0.05,
        message="every socket back, every topic confirmed, tickers flowing",
    )
    # Bybit's return is found within the backoff's cap (5 s), plus a connect and a subscription.
    back_after = time.monotonic() - accepting_from
    assert back_after < 7, f"receiving again {back_after:.1f} s after the exchange accepted again"
    assert running.figures().connections == 3


def test_it_keeps_backing_off_from_a_server_that_accepts_then_drops_it(simulator, start_connections) -> None:
    running, _ = start_connections(backoff_initial=0.2, backoff_max=5.0)
    running.assign(listed=simulator.live_symbols("BTC")[:50], delivered=[])
    drops = 0
    seen = 0
    ends_at = time.monotonic() + 6
    while time.monotonic() < ends_at:
        figures = running.figures()
        if figures.connections == 1 and figures.messages > seen:  # up again, and delivering
            simulator.drop_connections()
            drops += 1
            poll(lambda: running.figures().connections == 0, timeout=2, message="the drop noticed")
            seen = running.figures().messages
        time.sleep(0.02)
    # Delays of 0.2, 0.4, 0.8, 1.6, 3.2 s (less up to a fifth, the jitter) fit five connections in 6 s; with the
    # backoff restarted at every ticker, as it was before, this server dropped the feed over twenty times in 6 s.
    assert drops <= 6, f"dropped {drops} times"
