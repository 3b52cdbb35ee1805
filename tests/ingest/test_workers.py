"""Real Celery workers and beat run the feeds: placement, admin changes, takeover (with beat dead too), shutdown.

The feed processes are started with the command line ``make demo`` uses (``optionsite.devstack``).
"""

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

from ingest.keys import chain_key, feed_dispatch_key, feed_lease_key
from ingest.placement import feed_worker_heartbeats, feed_workers_key, live_feed_workers, node_of_lease
from ingest.simulator import RunningSimulator
from ingest.status import read_feed_status
from ingest.store import purge_asset
from optionsite.clock import now_ms
from optionsite.devstack import feed_worker_service
from tests.ingest.conftest import poll

BASE_DIR = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent

pytestmark = pytest.mark.slow


class Stack:
    """Worker and beat processes sharing one SQLite file, the test Redis and a simulator."""

    def __init__(self, tmp_path: Path, simulator: RunningSimulator) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "BYBIT_REST_URL": simulator.rest_url,
            "BYBIT_WS_URL": simulator.ws_url,
            "FEED_FLUSH_INTERVAL": "0.1",
            "FEED_LEASE_TTL": "6",
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.manage("migrate", "--noinput", "-v0")

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def shell(self, code: str) -> None:
        self.manage("shell", "-c", code)

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(args, cwd=BASE_DIR, env=self.env, stdout=log, stderr=log)
        self.processes[name] = process
        return process

    def start_feed_worker(self, number: int) -> subprocess.Popen[bytes]:
        service = feed_worker_service(number)
        return self.start(service.name, service.args)

    def start_beat(self) -> None:
        self.start(
            "beat", [str(BIN_DIR / "celery"), "-A", "optionsite", "beat", "-s", str(self.tmp_path / "beat-schedule")]
        )

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def stack(tmp_path: Path, start_simulator, redis_client: redis.Redis) -> Iterator[Stack]:
    # One push a second per contract keeps three assets' feeds light for a 2-core machine.
    simulator = start_simulator(assets=("BTC", "ETH", "SOL"), rate_hz=1.0)
    running = Stack(tmp_path, simulator)
    running.simulator = simulator  # type: ignore[attr-defined]
    yield running
    running.stop()
    for asset in ("BTC", "ETH", "SOL", "XRP"):
        purge_asset(redis_client, asset=asset)
        redis_client.delete(feed_lease_key(asset), feed_dispatch_key(asset))
    redis_client.delete(feed_workers_key())


def holder(client: redis.Redis, asset: str) -> str | None:
    value = client.get(feed_lease_key(asset))
    return value.decode() if isinstance(value, bytes) else None


def live(client: redis.Redis, asset: str) -> bool:
    status = read_feed_status(client, asset)
    return status is not None and status.is_fresh(stale_after=3)


def fully_subscribed(client: redis.Redis, asset: str) -> bool:
    status = read_feed_status(client, asset)
    return live(client, asset) and status is not None and 0 < status.instruments == status.subscribed


def process_running(client: redis.Redis, asset: str) -> str:
    """The feed process holding the asset's lease, by the name before the @ (``feeds1``); "" if none."""
    return node_of_lease(holder(client, asset) or "").partition("@")[0]


def live_feed_worker_names(client: redis.Redis) -> list[str]:
    """The registered feed workers, by the name before the @ (``feeds1``)."""
    # The workers run with FEED_LEASE_TTL=6 (dead after 3 s); this process has the default, hence the explicit age.
    workers = live_feed_workers(heartbeats=feed_worker_heartbeats(client), at_ms=now_ms(), dead_after=3)
    return [node.partition("@")[0] for node in workers]


def test_two_workers_run_exactly_one_feed_per_asset_and_one_takes_over_after_kill_9(
    stack: Stack, redis_client: redis.Redis
) -> None:
    simulator: RunningSimulator = stack.simulator  # type: ignore[attr-defined]
    workers = {"feeds1": stack.start_feed_worker(1), "feeds2": stack.start_feed_worker(2)}
    # As `make demo` does: beat (the refresh schedules) starts once the feed processes are up.
    poll(lambda: live_feed_worker_names(redis_client) == ["feeds1", "feeds2"], timeout=45, interval=0.2)
    stack.start_beat()
    poll(
        lambda: all(fully_subscribed(redis_client, asset) for asset in ("BTC", "ETH", "SOL")), timeout=45, interval=0.5
    )

    # One socket per asset (each has fewer than 2,000 contracts), whatever the number of workers.
    time.sleep(3)
    assert simulator.connection_count() == 3
    runs_on = {asset: process_running(redis_client, asset) for asset in ("BTC", "ETH", "SOL")}
    assert set(runs_on.values()) == {"feeds1", "feeds2"}, f"both processes run feeds: {runs_on}"

    victim = runs_on["BTC"]
    survivor = "feeds2" if victim == "feeds1" else "feeds1"
    workers[victim].send_signal(signal.SIGKILL)
    workers[victim].wait(timeout=10)
    killed_at = time.monotonic()

    poll(lambda: process_running(redis_client, "BTC") == survivor, timeout=30, interval=0.5)
    poll(lambda: fully_subscribed(redis_client, "BTC"), timeout=30, interval=0.5, message="BTC live, every topic")
    assert time.monotonic() - killed_at < 30
    poll(lambda: all(live(redis_client, asset) for asset in ("BTC", "ETH", "SOL")), timeout=30, interval=0.5)
    assert {process_running(redis_client, asset) for asset in ("BTC", "ETH", "SOL")} == {survivor}
    poll(lambda: simulator.connection_count() == 3, timeout=10, message="no duplicate sockets")
    assert live_feed_worker_names(redis_client) == [survivor]


def test_it_follows_assets_enabled_disabled_and_added_while_running(stack: Stack, redis_client: redis.Redis) -> None:
    stack.start_feed_worker(1)
    stack.start_beat()
    poll(lambda: all(live(redis_client, asset) for asset in ("BTC", "ETH", "SOL")), timeout=45, interval=0.5)

    stack.shell("from assets.models import Asset; a = Asset.objects.get(symbol='SOL'); a.enabled = False; a.save()")
    disabled_at = time.monotonic()
    poll(lambda: not redis_client.exists(chain_key("SOL")), timeout=5, interval=0.2, message="SOL's data removed")
    assert holder(redis_client, "SOL") is None
    assert time.monotonic() - disabled_at < 5

    stack.shell("from assets.models import Asset; Asset.objects.filter(symbol='SOL').update(enabled=True)")
    poll(lambda: redis_client.hlen(chain_key("SOL")) > 0, timeout=5, interval=0.2, message="SOL back within 5 s")

    stack.shell("from assets.models import Asset; Asset.objects.get(symbol='ETH').delete()")
    poll(lambda: not redis_client.exists(chain_key("ETH")), timeout=5, interval=0.2, message="ETH's data removed")


def test_sigterm_flushes_closes_sockets_and_releases_the_leases(stack: Stack, redis_client: redis.Redis) -> None:
    simulator: RunningSimulator = stack.simulator  # type: ignore[attr-defined]
    worker = stack.start_feed_worker(1)
    stack.start_beat()
    poll(lambda: all(live(redis_client, asset) for asset in ("BTC", "ETH", "SOL")), timeout=45, interval=0.5)
    stack.processes.pop("beat").send_signal(signal.SIGTERM)

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0, stack.log("feeds1")
    for asset in ("BTC", "ETH", "SOL"):
        assert holder(redis_client, asset) is None
        status = read_feed_status(redis_client, asset)
        assert status is not None
        assert status.state == "stopped"
    poll(lambda: simulator.connection_count() == 0, timeout=5)


def test_the_other_worker_takes_over_a_killed_workers_assets_with_beat_dead(
    stack: Stack, redis_client: redis.Redis
) -> None:
    workers = {"feeds1": stack.start_feed_worker(1), "feeds2": stack.start_feed_worker(2)}
    poll(lambda: live_feed_worker_names(redis_client) == ["feeds1", "feeds2"], timeout=45, interval=0.2)
    stack.start_beat()
    poll(lambda: all(live(redis_client, asset) for asset in ("BTC", "ETH", "SOL")), timeout=45, interval=0.5)
    beat = stack.processes.pop("beat")
    beat.send_signal(signal.SIGKILL)
    beat.wait(timeout=10)

    victim = process_running(redis_client, "BTC")
    survivor = "feeds2" if victim == "feeds1" else "feeds1"
    workers[victim].send_signal(signal.SIGKILL)
    workers[victim].wait(timeout=10)
    killed_at = time.monotonic()

    # The victim's leases expire within FEED_LEASE_TTL (6 s here); a few seconds more for a round and a start.
    poll(
        lambda: {process_running(redis_client, asset) for asset in ("BTC", "ETH", "SOL")} == {survivor},
        timeout=12,
        interval=0.2,
        message=f"{survivor} holds every lease",
    )
    poll(lambda: all(live(redis_client, asset) for asset in ("BTC", "ETH", "SOL")), timeout=10, interval=0.2)
    assert time.monotonic() - killed_at < 16
