"""One feed as a process of its own (``manage.py run_feed``), read by the simulator as an exchange would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ingest.keys import feed_lease_key
from ingest.simulator import RunningSimulator
from ingest.status import FeedStatus, read_feed_status
from ingest.store import purge_asset
from tests.ingest.conftest import poll

BASE_DIR = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def manage(env: dict[str, str], *args: str, **popen: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, **popen)  # type: ignore[call-overload]


@pytest.fixture
def feed_env(tmp_path: Path, redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "FEED_FLUSH_INTERVAL": "0.1",
        "FEED_STALE_AFTER": "3",
        "PYTHONUNBUFFERED": "1",
    }
    assert manage(env, "migrate", "--noinput", "-v0").wait(timeout=60) == 0
    yield env
    purge_asset(redis_client, asset="BTC")
    redis_client.delete(feed_lease_key("BTC"))


def status(client: redis.Redis) -> FeedStatus:
    return read_feed_status(client, "BTC") or FeedStatus(asset="BTC")


def test_a_reader_too_slow_is_dropped_and_the_feed_comes_back_whole_with_its_lag_reported(
    start_simulator, feed_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    simulator: RunningSimulator = start_simulator(assets=("BTC",), slow_reader="disconnect", max_backlog_seconds=1.0)
    env = {**feed_env, "BYBIT_REST_URL": simulator.rest_url, "BYBIT_WS_URL": simulator.ws_url}
    log = (tmp_path / "feed.log").open("wb")
    feed = manage(env, "run_feed", "BTC", "--every", "1", stdout=log, stderr=subprocess.STDOUT)
    try:
        contracts = len(simulator.live_symbols("BTC"))
        whole = lambda: (s := status(redis_client)).state == "live" and s.subscribed == contracts  # noqa: E731
        poll(whole, timeout=30, interval=0.2, message="the feed went live with every topic")
        reconnects = status(redis_client).reconnects

        # A reader that stops reading (a stalled process) is, to the exchange, one that falls behind.
        feed.send_signal(signal.SIGSTOP)
        poll(lambda: simulator.slow_reader_disconnects() == 1, timeout=20, interval=0.2, message="dropped")
        time.sleep(1)
        feed.send_signal(signal.SIGCONT)

        poll(
            lambda: (status(redis_client).lag_p99_ms or 0) > 2_000,
            timeout=10,
            interval=0.1,
            message="the backlog it read after the stop shows as lag",
        )
        poll(lambda: status(redis_client).reconnects > reconnects, timeout=15, message="it noticed the drop")
        poll(whole, timeout=30, interval=0.2, message="every topic back")
        assert sum(simulator.topics_per_connection()) == contracts
        poll(lambda: (status(redis_client).lag_p99_ms or 1e9) < 1_000, timeout=30, message="the lag fell again")
        assert simulator.state()["messages_skipped"] == 0
    finally:
        if feed.poll() is None:
            feed.send_signal(signal.SIGCONT)
            feed.send_signal(signal.SIGTERM)
            feed.wait(timeout=20)
    assert feed.returncode == 0, (tmp_path / "feed.log").read_text()
    assert "feed ended: requested" in (tmp_path / "feed.log").read_text()
