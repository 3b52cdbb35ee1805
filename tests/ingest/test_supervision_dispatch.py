"""The feed workers' own dispatch rounds: one worker per round, and a thread that outlives an outage."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ingest.keys import dispatch_round_key, feed_dispatch_key
from ingest.supervision import FeedDispatcher, dispatch_round
from optionsite.devstack import free_port, redis_server_binary
from tests.ingest.conftest import poll

ASSETS = ("BTC", "ETH", "SOL")


class Enqueued(list[tuple[str, str | None]]):
    def __call__(self, asset: str, node: str | None) -> None:
        self.append((asset, node))


@pytest.fixture
def clean_dispatch_keys(redis_client: redis.Redis) -> Iterator[None]:
    """No round lock or dispatch mark before or after (a worker test's last round leaves one for 1.8 s)."""
    keys = [dispatch_round_key(), *(feed_dispatch_key(asset) for asset in ASSETS)]
    redis_client.delete(*keys)
    yield
    redis_client.delete(*keys)


@pytest.mark.django_db
@pytest.mark.usefixtures("clean_dispatch_keys")
def test_it_runs_one_round_per_interval_whichever_worker_asks(redis_client: redis.Redis) -> None:
    enqueue = Enqueued()
    assert dispatch_round(client=redis_client, node="a@h", enqueue=enqueue, interval=2.0) == list(ASSETS)
    assert dispatch_round(client=redis_client, node="b@h", enqueue=enqueue, interval=2.0) is None
    assert len(enqueue) == 3

    time.sleep(1.9)  # the lock lasts 0.9 of the interval
    assert dispatch_round(client=redis_client, node="b@h", enqueue=enqueue, interval=2.0) == []


@pytest.fixture
def redis_port_down(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A loopback port where no Redis answers yet; a server started on it is stopped after the test."""
    servers: list[subprocess.Popen[bytes]] = []
    yield free_port(), servers
    for server in servers:
        server.terminate()
        server.wait(timeout=5)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "ingest.supervision" and record.levelno == logging.WARNING
    ]


@pytest.mark.django_db
def test_the_dispatcher_outlives_redis_going_away_and_says_so_once(
    redis_port_down: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port, servers = redis_port_down
    # No retries inside redis-py (8.x retries a refused command ten times by default): each round fails at once.
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    enqueue = Enqueued()
    stop = threading.Event()
    dispatcher = FeedDispatcher(
        client=client, node="a@h", enqueue=enqueue, interval=0.1, first_round_after=0.0, stop_event=stop
    )
    with caplog.at_level(logging.INFO, logger="ingest.supervision"):
        dispatcher.start()
        poll(lambda: warnings(caplog), timeout=5, message="the outage logged")
        time.sleep(1.0)  # ten more rounds, every one refused
        assert dispatcher.is_alive()
        assert len(warnings(caplog)) == 1
        assert enqueue == []

        args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        servers.append(subprocess.Popen([*args, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL))
        poll(lambda: len(enqueue) == 3, timeout=10, message="every asset sent once Redis is back")
        stop.set()
        dispatcher.join(timeout=2)

    assert not dispatcher.is_alive()
    assert sorted(asset for asset, _node in enqueue) == list(ASSETS)
    assert len(warnings(caplog)) == 1
    recovered = [record for record in caplog.records if "dispatches feeds again" in record.getMessage()]
    assert len(recovered) == 1


@pytest.mark.usefixtures("clean_dispatch_keys")
def test_a_worker_that_stops_before_its_first_round_runs_none_and_does_not_linger(redis_client: redis.Redis) -> None:
    stop = threading.Event()
    enqueue = Enqueued()
    dispatcher = FeedDispatcher(
        client=redis_client, node="stopping@h", enqueue=enqueue, interval=0.1, first_round_after=5.0, stop_event=stop
    )
    dispatcher.start()
    stop.set()
    dispatcher.join(timeout=1)
    assert not dispatcher.is_alive()
    assert enqueue == []
    # Every round starts by taking the lock in its node's name.
    assert redis_client.get(dispatch_round_key()) != b"stopping@h"
