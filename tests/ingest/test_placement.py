"""Feeds go to the least loaded live feed worker; the registry of workers lives in Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from ingest.keys import feed_dispatch_key, feed_lease_key, feed_status_key
from ingest.placement import (
    ANY_WORKER,
    UNKNOWN_WEIGHT,
    FeedPlacement,
    FeedWorkerHeartbeat,
    announce_feed_worker,
    asset_weight,
    feed_worker_heartbeats,
    feed_workers_key,
    live_feed_workers,
    node_of_lease,
    place_feeds,
)
from ingest.status import FeedStatus
from ingest.supervision import dispatch_feeds
from optionsite.clock import now_ms
from tests.ingest.conftest import poll

ASSETS = ("BTC", "ETH", "SOL")


def test_it_sends_an_asset_to_the_worker_with_the_fewest_contracts() -> None:
    placed = place_feeds(
        assets=["SOL"], workers=["a@h", "b@h"], owners={"BTC": "a@h", "ETH": "b@h"}, weights={"BTC": 800, "ETH": 300}
    )
    assert placed == {"SOL": "b@h"}


def test_it_breaks_ties_by_the_number_of_feeds_then_by_name() -> None:
    weights = {"BTC": 400, "ETH": 200, "SOL": 200, "XRP": 100}
    by_feeds = place_feeds(
        assets=["XRP"], workers=["a@h", "b@h"], owners={"BTC": "a@h", "ETH": "b@h", "SOL": "b@h"}, weights=weights
    )
    assert by_feeds == {"XRP": "a@h"}
    by_name = place_feeds(assets=["XRP"], workers=["b@h", "a@h"], owners={}, weights=weights)
    assert by_name == {"XRP": "a@h"}


def test_it_counts_the_assets_it_places_in_the_same_round() -> None:
    placed = place_feeds(assets=list(ASSETS), workers=["a@h", "b@h"], owners={}, weights={})
    # None has counted its contracts yet: all weigh the same, so they alternate, by name.
    assert placed == {"BTC": "a@h", "ETH": "b@h", "SOL": "a@h"}


def test_it_places_the_heaviest_asset_first() -> None:
    placed = place_feeds(
        assets=list(ASSETS), workers=["a@h", "b@h"], owners={}, weights={"BTC": 800, "ETH": 500, "SOL": 300}
    )
    assert placed == {"BTC": "a@h", "ETH": "b@h", "SOL": "b@h"}


def test_it_ignores_the_feeds_of_workers_that_are_not_live() -> None:
    placed = place_feeds(assets=["SOL"], workers=["b@h"], owners={"BTC": "gone@h"}, weights={"BTC": 800})
    assert placed == {"SOL": "b@h"}


def test_it_offers_no_worker_when_none_is_live() -> None:
    assert place_feeds(assets=["BTC", "ETH"], workers=[], owners={}, weights={}) == {"BTC": None, "ETH": None}


def test_a_worker_silent_for_longer_than_dead_after_is_not_live() -> None:
    heartbeats = {"a@h": 100_000.0, "b@h": 95_000.0, "c@h": 94_999.0}
    assert live_feed_workers(heartbeats=heartbeats, at_ms=100_000, dead_after=5) == ["a@h", "b@h"]


def test_an_asset_weighs_its_contracts_or_a_thousand_before_it_counted_them() -> None:
    assert asset_weight(FeedStatus(asset="BTC", instruments=778)) == 778
    assert asset_weight(FeedStatus(asset="BTC", instruments=0)) == UNKNOWN_WEIGHT == 1_000
    assert asset_weight(None) == UNKNOWN_WEIGHT


def test_it_reads_the_node_name_out_of_a_lease_token() -> None:
    assert node_of_lease("feeds1@host:1a2b3c4d") == "feeds1@host"


def test_it_places_again_an_asset_sent_to_a_worker_that_is_gone_but_waits_for_the_others() -> None:
    placement = FeedPlacement(
        assets=["ADA", "BTC", "ETH", "SOL", "XRP"],
        workers=["a@h"],
        running={"BTC": "a@h"},
        sent={"ETH": "a@h", "SOL": "gone@h", "XRP": ANY_WORKER},
        weights={},
    )
    assert placement.to_place() == ["ADA", "SOL"]
    assert placement.owners() == {"BTC": "a@h", "ETH": "a@h"}


@pytest.fixture
def clean_feed_keys(redis_client: redis.Redis) -> Iterator[None]:
    yield
    for asset in ASSETS:
        redis_client.delete(feed_lease_key(asset), feed_dispatch_key(asset), feed_status_key(asset))
    redis_client.delete(feed_workers_key())


class Enqueued(list[tuple[str, str | None]]):
    def __call__(self, asset: str, node: str | None) -> None:
        self.append((asset, node))


def write_status(client: redis.Redis, status: FeedStatus) -> None:
    """The status hash as a feed that has counted its contracts leaves it."""
    client.hset(feed_status_key(status.asset), mapping=status.to_redis())  # type: ignore[arg-type]


def mark(client: redis.Redis, asset: str) -> str | None:
    value = client.get(feed_dispatch_key(asset))
    return value.decode() if isinstance(value, bytes) else None


@pytest.mark.django_db
@pytest.mark.usefixtures("clean_feed_keys")
def test_dispatch_sends_each_asset_to_the_least_loaded_live_worker(redis_client: redis.Redis) -> None:
    announce_feed_worker(redis_client, node="a@h", at_ms=now_ms())
    announce_feed_worker(redis_client, node="b@h", at_ms=now_ms())
    announce_feed_worker(redis_client, node="gone@h", at_ms=now_ms() - 60_000)
    redis_client.set(feed_lease_key("BTC"), "a@h:1a2b3c4d", ex=30)
    write_status(redis_client, FeedStatus(asset="BTC", instruments=800))
    write_status(redis_client, FeedStatus(asset="ETH", instruments=300))

    enqueue = Enqueued()
    assert dispatch_feeds(client=redis_client, enqueue=enqueue) == ["ETH", "SOL"]

    # SOL (not counted yet: 1,000) first, to the idle b; then ETH (300) to a (800) rather than b (1,000).
    assert sorted(enqueue) == [("ETH", "a@h"), ("SOL", "b@h")]
    assert (mark(redis_client, "ETH"), mark(redis_client, "SOL")) == ("a@h", "b@h")
    assert dispatch_feeds(client=redis_client, enqueue=enqueue) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("clean_feed_keys")
def test_dispatch_uses_the_shared_queue_when_no_worker_is_live(redis_client: redis.Redis) -> None:
    announce_feed_worker(redis_client, node="gone@h", at_ms=now_ms() - 60_000)
    enqueue = Enqueued()
    assert dispatch_feeds(client=redis_client, enqueue=enqueue) == list(ASSETS)
    assert enqueue == [(asset, None) for asset in ASSETS]
    assert mark(redis_client, "BTC") == ANY_WORKER


@pytest.mark.django_db
@pytest.mark.usefixtures("clean_feed_keys")
def test_dispatch_sends_again_at_once_a_feed_sent_to_a_worker_that_has_gone(redis_client: redis.Redis) -> None:
    announce_feed_worker(redis_client, node="a@h", at_ms=now_ms())
    redis_client.set(feed_dispatch_key("BTC"), "gone@h", ex=10)
    redis_client.set(feed_dispatch_key("ETH"), "a@h", ex=10)
    redis_client.set(feed_lease_key("SOL"), "a@h:1a2b3c4d", ex=30)

    enqueue = Enqueued()
    assert dispatch_feeds(client=redis_client, enqueue=enqueue) == ["BTC"]
    assert enqueue == [("BTC", "a@h")]
    assert mark(redis_client, "BTC") == "a@h"


@pytest.mark.usefixtures("clean_feed_keys")
def test_the_heartbeat_keeps_a_worker_registered_until_it_stops(redis_client: redis.Redis) -> None:
    stop = threading.Event()
    heartbeat = FeedWorkerHeartbeat(client=redis_client, node="a@h", interval=0.05, stop_event=stop)
    heartbeat.start()
    first = poll(lambda: feed_worker_heartbeats(redis_client).get("a@h", 0.0), timeout=2)
    poll(lambda: feed_worker_heartbeats(redis_client).get("a@h", 0.0) > first, timeout=2, message="beats again")

    stop.set()
    heartbeat.join(timeout=2)
    assert not heartbeat.is_alive()
    assert "a@h" not in feed_worker_heartbeats(redis_client)
