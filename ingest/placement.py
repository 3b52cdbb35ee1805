"""Which feed process gets an asset's feed: the registry of live feed workers, and the choice.

Every worker process that consumes the ``feeds`` queue keeps itself in a sorted set (node name scored by its
last heartbeat, epoch ms) while it runs. ``dispatch_feeds`` sends each asset nobody runs to the live one with
the fewest contracts to follow, on that worker's own queue (``CELERY_WORKER_DIRECT``), so that feeds spread
over the processes (and cores, and machines) instead of going to whichever worker takes the shared queue first.
Running feeds are never moved: a worker that joins gets feeds at the next placement (a new asset, a failover).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis
from django.conf import settings

from ingest.keys import feed_dispatch_key, feed_lease_key, feed_status_key, feed_workers_key
from ingest.status import FeedStatus
from optionsite.clock import now_ms

logger = logging.getLogger(__name__)

# An asset whose feed has not counted its contracts yet weighs as much as a big chain (BTC lists ~800), so that
# two new assets do not both go to the worker that looks idle only because its feed has just started.
UNKNOWN_WEIGHT = 1_000


def heartbeat_interval() -> float:
    """Seconds between a feed worker's heartbeats: a sixth of ``FEED_LEASE_TTL`` (2.5 s by default)."""
    return settings.FEED_LEASE_TTL / 6


def dead_after() -> float:
    """Seconds without a heartbeat after which a feed worker counts as gone: half of ``FEED_LEASE_TTL``.

    A killed worker's leases expire between two thirds of the TTL and the whole TTL after its death (they are
    renewed every third). It must have left the registry by then: with its feeds gone it would look like the
    least loaded worker, and its orphaned assets would be sent back to it.
    """
    return settings.FEED_LEASE_TTL / 2


def announce_feed_worker(client: redis.Redis, *, node: str, at_ms: int) -> None:
    client.zadd(feed_workers_key(), {node: at_ms})


def withdraw_feed_worker(client: redis.Redis, *, node: str) -> None:
    client.zrem(feed_workers_key(), node)


def feed_worker_heartbeats(client: redis.Redis) -> dict[str, float]:
    """Every registered feed worker → its last heartbeat (epoch ms), gone ones included until they are pruned."""
    return _heartbeats(client.zrange(feed_workers_key(), 0, -1, withscores=True))  # type: ignore[arg-type]


class FeedWorkerHeartbeat(threading.Thread):
    """Keeps one worker process in the registry until ``stop_event`` is set, then takes it out.

    The event is the worker's "shutting down" flag: a worker that is stopping takes no new feeds, and the
    feeds it releases go elsewhere. A worker killed outright just stops beating and ages out (``dead_after``).
    """

    def __init__(self, *, client: redis.Redis, node: str, interval: float, stop_event: threading.Event) -> None:
        super().__init__(name=f"feed-worker-heartbeat-{node}", daemon=True)
        self.client = client
        self.node = node
        self.interval = interval
        self.stop_event = stop_event

    def run(self) -> None:
        failing = False
        while True:
            try:
                announce_feed_worker(self.client, node=self.node, at_ms=now_ms())
                failing = False
            except redis.RedisError as exc:
                if not failing:  # once per outage, not every beat
                    logger.warning("feed worker %s cannot reach Redis for its heartbeat: %s", self.node, exc)
                failing = True
            if self.stop_event.wait(self.interval):
                break
        try:
            withdraw_feed_worker(self.client, node=self.node)
        except redis.RedisError as exc:
            logger.warning("feed worker %s could not leave the registry (it ages out): %s", self.node, exc)


def live_feed_workers(*, heartbeats: Mapping[str, float], at_ms: int, dead_after: float) -> list[str]:
    """The workers that beat within ``dead_after`` seconds of ``at_ms``, by name."""
    oldest = at_ms - dead_after * 1000
    return sorted(node for node, beat_ms in heartbeats.items() if beat_ms >= oldest)


def node_of_lease(token: str) -> str:
    """The Celery node name in a lease token (``feeds1@host:1a2b3c4d`` → ``feeds1@host``)."""
    return token.rpartition(":")[0]


def asset_weight(status: FeedStatus | None) -> int:
    """How heavy an asset's feed is: its listed contracts (topics), ``UNKNOWN_WEIGHT`` before it counted them."""
    if status is None or status.instruments <= 0:
        return UNKNOWN_WEIGHT
    return status.instruments


@dataclass(frozen=True)
class WorkerLoad:
    node: str
    instruments: int = 0
    feeds: int = 0

    def with_feed(self, weight: int) -> WorkerLoad:
        return WorkerLoad(node=self.node, instruments=self.instruments + weight, feeds=self.feeds + 1)

    def order(self) -> tuple[int, int, str]:
        return (self.instruments, self.feeds, self.node)


def place_feeds(
    *, assets: Iterable[str], workers: Iterable[str], owners: Mapping[str, str], weights: Mapping[str, int]
) -> dict[str, str | None]:
    """Choose a worker for each of ``assets``; ``None`` for all of them when no worker is live.

    ``owners`` maps the assets already running (or already sent) to their worker; owners that are not in
    ``workers`` are ignored. Each asset goes to the worker with the fewest contracts, then the fewest feeds,
    then the first name, counting the assets placed before it; the heaviest assets are placed first.
    """
    loads = {node: WorkerLoad(node=node) for node in workers}
    for asset, node in owners.items():
        if node in loads:
            loads[node] = loads[node].with_feed(weights.get(asset, UNKNOWN_WEIGHT))
    placed: dict[str, str | None] = {}
    for asset in sorted(assets, key=lambda name: (-weights.get(name, UNKNOWN_WEIGHT), name)):
        if not loads:
            placed[asset] = None
            continue
        lightest = min(loads.values(), key=WorkerLoad.order)
        loads[lightest.node] = lightest.with_feed(weights.get(asset, UNKNOWN_WEIGHT))
        placed[asset] = lightest.node
    return placed


# The dispatch mark of a feed task sent to the shared ``feeds`` queue, where any worker may take it.
ANY_WORKER = "any"


@dataclass
class FeedPlacement:
    """What one dispatch round knows about the enabled assets and the feed workers."""

    assets: list[str]
    workers: list[str]
    running: dict[str, str]  # asset → the node holding its lease
    sent: dict[str, str]  # asset → its dispatch mark: the node its feed task went to, or ANY_WORKER
    weights: dict[str, int]

    def owners(self) -> dict[str, str]:
        """The live worker each asset runs on, or was sent to and has not started on yet."""
        live = set(self.workers)
        owners = {asset: node for asset, node in self.sent.items() if node in live}
        owners.update(self.running)
        return owners

    def to_place(self) -> list[str]:
        """Assets nobody runs and no live worker is about to start: never sent, or sent to a worker now gone.

        An asset sent to the shared queue waits for its dispatch mark to expire, as before there was a registry.
        """
        live = set(self.workers)
        return [asset for asset in self.assets if asset not in self.running and not self._on_its_way(asset, live)]

    def _on_its_way(self, asset: str, live: set[str]) -> bool:
        mark = self.sent.get(asset)
        if mark is None:
            return False
        # Celery node names are name@host; any other mark (ANY_WORKER, an older "1") means the shared queue.
        return mark in live or "@" not in mark


def read_feed_placement(client: redis.Redis, *, assets: Iterable[str], at_ms: int) -> FeedPlacement:
    """Everything a dispatch round needs, in one round trip.

    Registry members silent for an hour are dropped on the way, so that replaced containers (a new host name
    each) do not pile up; until then ``ZRANGE … WITHSCORES`` shows when a gone worker last beat.
    """
    names = sorted(assets)
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(feed_workers_key(), "-inf", at_ms - 3_600_000)
    pipe.zrange(feed_workers_key(), 0, -1, withscores=True)
    for asset in names:
        pipe.get(feed_lease_key(asset))
        pipe.get(feed_dispatch_key(asset))
        pipe.hgetall(feed_status_key(asset))
    _pruned, members, *per_asset = pipe.execute()
    heartbeats = _heartbeats(members)
    placement = FeedPlacement(
        assets=names,
        workers=live_feed_workers(heartbeats=heartbeats, at_ms=at_ms, dead_after=dead_after()),
        running={},
        sent={},
        weights={},
    )
    for index, asset in enumerate(names):
        lease, mark, status = per_asset[3 * index : 3 * index + 3]
        if lease is not None:
            placement.running[asset] = node_of_lease(_text(lease))
        if mark is not None:
            placement.sent[asset] = _text(mark)
        placement.weights[asset] = asset_weight(FeedStatus.from_redis(asset, status))
    return placement


def _heartbeats(members: list[tuple[bytes, float]]) -> dict[str, float]:
    return {_text(node): score for node, score in members}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
