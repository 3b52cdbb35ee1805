"""A feed through a Redis restart: one line per failure and one on recovery, and no write once its lease is gone."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pytest_django.fixtures import Settings as SettingsWrapper

from ingest.feed import AssetFeed, FeedSettings, StopReason
from ingest.keys import feed_lease_key, feed_status_key
from ingest.lease import Lease, LeaseKeeper
from ingest.simulator import RunningSimulator
from ingest.status import read_feed_status
from optionsite.devstack import free_port, redis_server_binary
from optionsite.redis_client import redis_connection
from tests.ingest.conftest import poll

LEASE_TTL = 3.0


class RedisOnPort:
    """A redis-server that keeps nothing on disk and can be stopped and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir"]
        self.process = subprocess.Popen([*args, str(self.directory)], stdout=subprocess.DEVNULL)
        poll(self.answers, timeout=10, interval=0.05, message="redis-server answers")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False


@pytest.fixture
def private_redis(tmp_path: Path, settings: SettingsWrapper) -> Iterator[RedisOnPort]:
    server = RedisOnPort(tmp_path)
    server.start()
    settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"  # the app's client, with its timeouts and retries
    yield server
    server.stop()


def run_leased_feed(
    simulator: RunningSimulator, client: redis.Redis, asset: str, *, lease_ttl: float = LEASE_TTL
) -> tuple[AssetFeed, threading.Thread, list[StopReason], LeaseKeeper]:
    """As a worker runs a feed (``ingest.supervision.run_asset_feed``): only while it holds the asset's lease."""
    lease = Lease(client, key=feed_lease_key(asset), token="old-worker:1", ttl=lease_ttl)
    assert lease.acquire()
    keeper = LeaseKeeper(lease)
    keeper.start()
    feed = AssetFeed(
        asset=asset,
        settings=FeedSettings(
            ws_url=simulator.ws_url, rest_url=simulator.rest_url, flush_interval=0.1, stale_after=3.0
        ),
        client=client,
        channel_layer=None,
        worker="old-worker",
        owns_lease=keeper.held,
    )
    result: list[StopReason] = []
    thread = threading.Thread(target=lambda: result.append(feed.run()), daemon=True)
    thread.start()
    return feed, thread, result, keeper


def test_a_redis_restart_logs_one_line_per_failure_and_the_feed_that_lost_its_lease_writes_nothing(
    start_simulator, private_redis: RedisOnPort, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen before: 261 tracebacks per 25 s of downtime, and a feed whose lease had expired wrote "stopped"."""
    simulator = start_simulator(assets=("SOL",))
    client = redis_connection()
    feed, thread, result, keeper = run_leased_feed(simulator, client, "SOL")
    try:
        poll(lambda: (read_feed_status(client, "SOL") or feed.status).state == "live", timeout=15)
        caplog.clear()
        caplog.set_level(logging.WARNING, logger="ingest")

        private_redis.stop()
        time.sleep(LEASE_TTL + 2)  # the lease has expired on the server's side by now (if it were still running)
        private_redis.start()  # empty: the lease, and the feed's keys, are gone

        # Whoever owns SOL now, it is not this feed: it must not write anything at all.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert not client.exists(feed_status_key("SOL")), "a feed without its lease wrote its status"
            time.sleep(0.05)
        thread.join(timeout=10)
        assert result == [StopReason.LEASE_LOST]
        assert not client.exists(feed_status_key("SOL"))
    finally:
        feed.stop()
        thread.join(timeout=10)
        keeper.stop()

    flush_lines = [record for record in caplog.records if record.getMessage().startswith("flush")]
    assert len(flush_lines) == 1, [record.getMessage() for record in flush_lines]
    assert flush_lines[0].exc_info is None, "an outage is not a bug: no traceback"
    tracebacks = [record.getMessage() for record in caplog.records if record.exc_info]
    assert tracebacks == []


def test_it_says_once_when_flushes_fail_and_once_when_they_work_again(
    start_simulator, private_redis: RedisOnPort, caplog: pytest.LogCaptureFixture
) -> None:
    simulator = start_simulator(assets=("SOL",))
    client = redis_connection()
    feed, thread, _result, keeper = run_leased_feed(simulator, client, "SOL", lease_ttl=15)
    try:
        poll(lambda: (read_feed_status(client, "SOL") or feed.status).state == "live", timeout=15)
        caplog.clear()
        caplog.set_level(logging.WARNING, logger="ingest")

        private_redis.stop()
        time.sleep(4)  # flushes fail, well within the lease's TTL
        private_redis.start()
        client.set(feed_lease_key("SOL"), "old-worker:1", px=15_000)  # as if Redis had kept it

        poll(lambda: client.exists(feed_status_key("SOL")), timeout=5, message="it writes again")
        assert thread.is_alive()
    finally:
        feed.stop()
        thread.join(timeout=10)
        keeper.stop()
    flush_lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("flush")]
    assert len(flush_lines) == 2, flush_lines
    assert flush_lines[0].startswith("flush failed: ConnectionError")
    assert flush_lines[1].startswith("flush works again, after ")
