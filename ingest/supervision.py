"""Which worker runs which asset's feed: dispatch, leases, refresh requests.

Every feed worker runs ``FeedDispatcher``: every ``DISPATCH_INTERVAL`` seconds one of them (whichever takes
the round's Redis lock first) runs ``dispatch_feeds``: every enabled asset whose lease nobody holds gets one
``run_feed`` task, sent to the feed worker ``ingest.placement`` chooses; the worker that takes the lease runs
the feed for as long as it holds it (the lease, not the placement, is what makes one feed per asset). So a dead
worker's assets are taken over by the others with no other process running: not beat, not a scheduler.
Leftover data of assets that are no longer enabled and that no feed is cleaning up is removed.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable

import orjson
import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from assets.models import Asset
from ingest.events import build_feed_refresh
from ingest.feed import AssetFeed, FeedSettings, StopReason
from ingest.keys import (
    dispatch_round_key,
    feed_control_channel,
    feed_dispatch_key,
    feed_lease_key,
    tracked_assets_key,
)
from ingest.lease import Lease, LeaseKeeper
from ingest.placement import ANY_WORKER, place_feeds, read_feed_placement
from ingest.store import purge_asset
from optionsite.clock import now_ms
from optionsite.redis_client import texts

logger = logging.getLogger(__name__)

# A queued feed task that no worker has started within this many seconds is queued again.
DISPATCH_RETRY_SECONDS = 10
# Seconds between dispatch rounds: how soon an asset enabled, or left without a feed, is sent to a worker.
DISPATCH_INTERVAL = 2.0
# A feed worker runs its first round this long after it is ready, so that the feed processes started with it
# (`make demo`, a container's FEED_PROCESSES) have registered too and the first placement spreads the feeds
# over all of them; two started together on the 2-core development machine were ready within the same second.
FIRST_ROUND_DELAY = 5.0


def asset_is_enabled(symbol: str) -> bool:
    try:
        return Asset.objects.filter(symbol=symbol, enabled=True).exists()
    finally:
        close_old_connections()  # long-lived threads must not keep a broken connection


def dispatch_feeds(*, client: redis.Redis, enqueue: Callable[[str, str | None], None]) -> list[str]:
    """Queue a feed for every enabled asset nobody runs; returns the assets queued.

    Each goes to the least loaded live feed worker (``ingest.placement``): ``enqueue(asset, node)`` sends it
    to that worker's own queue. With no worker in the registry (one started by hand on an older release,
    say) ``node`` is ``None``: the shared ``feeds`` queue, where the first free worker takes it.
    """
    enabled = set(Asset.objects.enabled().values_list("symbol", flat=True))
    close_old_connections()
    placement = read_feed_placement(client, assets=enabled, at_ms=now_ms())
    choices = place_feeds(
        assets=placement.to_place(), workers=placement.workers, owners=placement.owners(), weights=placement.weights
    )
    queued = []
    for asset, node in sorted(choices.items()):
        # A mark naming a worker that has gone since is replaced at once rather than waited out.
        replacing = asset in placement.sent
        mark = node or ANY_WORKER
        if client.set(feed_dispatch_key(asset), mark, nx=not replacing, ex=DISPATCH_RETRY_SECONDS):
            enqueue(asset, node)
            queued.append(asset)
    tracked = set(texts(client.smembers(tracked_assets_key())))
    for asset in sorted(tracked - enabled):
        if not client.exists(feed_lease_key(asset)):
            logger.info("removing the data of an asset no longer enabled", extra={"asset": asset})
            purge_asset(client, asset=asset)
    return queued


def dispatch_round(
    *, client: redis.Redis, node: str, enqueue: Callable[[str, str | None], None], interval: float
) -> list[str] | None:
    """Run ``dispatch_feeds`` unless another worker started a round less than ``interval`` seconds ago.

    Returns the assets queued, or ``None`` when the round was someone else's. The lock lasts a little less than
    ``interval``, so that the worker that ran the last round finds it free at its next turn and the rounds keep
    their pace; two rounds at once would do no harm (dispatch marks and leases make them idempotent), only waste.
    """
    if not client.set(dispatch_round_key(), node, nx=True, px=int(interval * 900)):
        return None
    return dispatch_feeds(client=client, enqueue=enqueue)


class FeedDispatcher(threading.Thread):
    """Runs dispatch rounds in a feed worker until ``stop_event`` is set (the worker is shutting down).

    Every feed worker runs one, so that dispatch goes on while any one of them lives. A round that fails
    (Redis, the database or the broker away) is logged once per outage and tried again at the next turn.
    """

    def __init__(
        self,
        *,
        client: redis.Redis,
        node: str,
        enqueue: Callable[[str, str | None], None],
        interval: float,
        first_round_after: float,
        stop_event: threading.Event,
    ) -> None:
        super().__init__(name=f"feed-dispatcher-{node}", daemon=True)
        self.client = client
        self.node = node
        self.enqueue = enqueue
        self.interval = interval
        self.first_round_after = first_round_after
        self.stop_event = stop_event

    def run(self) -> None:
        if self.stop_event.wait(self.first_round_after):
            return
        failing = False
        while True:
            try:
                self._round()
                if failing:
                    logger.info("feed worker %s dispatches feeds again", self.node)
                failing = False
            except Exception as exc:  # whatever is down, this thread must outlive it
                if not failing:
                    logger.warning("feed worker %s cannot dispatch feeds: %s: %s", self.node, type(exc).__name__, exc)
                failing = True
            if self.stop_event.wait(self.interval):
                break

    def _round(self) -> None:
        try:
            dispatch_round(client=self.client, node=self.node, enqueue=self.enqueue, interval=self.interval)
        finally:
            close_old_connections()  # a thread that lives for days must not keep a broken connection


def request_refresh(*, client: redis.Redis, assets: list[str]) -> int:
    """Ask the running feeds of ``assets`` to re-read their instruments now."""
    return int(client.publish(feed_control_channel(), orjson.dumps(build_feed_refresh(assets=assets))))


def run_asset_feed(*, client: redis.Redis, asset: str, worker: str, stop_event: threading.Event) -> str:
    """Run ``asset``'s feed here if no one else does, until stopped; returns why it ended.

    ``worker`` names this worker in the lease and the feed status (Celery's node name).
    """
    worker = worker or socket.gethostname()
    lease = Lease(
        client, key=feed_lease_key(asset), token=f"{worker}:{uuid.uuid4().hex[:8]}", ttl=settings.FEED_LEASE_TTL
    )
    if not lease.acquire():
        return f"already running on {lease.holder()}"
    client.delete(feed_dispatch_key(asset))
    keeper = LeaseKeeper(lease)
    keeper.start()
    reason = StopReason.REQUESTED
    try:
        feed = AssetFeed(
            asset=asset,
            settings=FeedSettings.from_django(),
            client=client,
            channel_layer=get_channel_layer(),
            worker=worker,
            is_enabled=lambda: asset_is_enabled(asset),
            owns_lease=keeper.held,
            stop_event=stop_event,
        )
        reason = feed.run()
    finally:
        keeper.stop()
        if reason is not StopReason.LEASE_LOST:
            lease.release()
    return reason.value
