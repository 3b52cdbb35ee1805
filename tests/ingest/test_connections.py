"""A feed's connections on their own: real pybit sockets against the simulator, no flusher, no Redis."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from ingest.config import FeedSettings
from ingest.connections import AssetConnections
from ingest.simulator import RunningSimulator
from ingest.snapshots import LatestSnapshots
from ingest.throttled_log import RateLimitedLog
from tests.ingest.conftest import poll


@pytest.fixture
def connections(simulator: RunningSimulator) -> Iterator[tuple[AssetConnections, LatestSnapshots]]:
    snapshots = LatestSnapshots()
    stop = threading.Event()
    settings = FeedSettings(
        ws_url=simulator.ws_url,
        rest_url=simulator.rest_url,
        topics_per_connection=150,
        silence_timeout=2.0,
        backoff_initial=0.1,
        backoff_max=0.5,
    )
    running = AssetConnections(
        asset="BTC", settings=settings, snapshots=snapshots, stop_event=stop, log=RateLimitedLog(logging.getLogger())
    )
    watching = threading.Event()

    def watchdog() -> None:
        while not watching.is_set():
            running.watch(time.monotonic())
            time.sleep(0.05)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    yield running, snapshots
    watching.set()
    thread.join(timeout=5)
    stop.set()
    running.close()


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
