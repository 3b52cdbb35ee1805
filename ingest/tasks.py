"""Celery tasks of the ingest, and the worker signals that start a feed worker's heartbeat and dispatcher.

The logic lives in ``ingest.supervision`` and ``ingest.placement``.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_ready, worker_shutting_down
from celery.utils.nodenames import worker_direct

from assets.models import Asset
from ingest import supervision
from ingest.placement import FeedWorkerHeartbeat, heartbeat_interval
from optionsite.redis_client import redis_connection

FEED_QUEUE = "feeds"

# Set when the worker begins a warm shutdown (SIGTERM): every feed in this process stops,
# flushes, closes its sockets and releases its lease, so that the worker can exit; the
# heartbeat takes the worker out of the registry, so that no new feed is sent here.
shutting_down = threading.Event()


@worker_shutting_down.connect
def _stop_feeds(**kwargs: Any) -> None:
    shutting_down.set()


@worker_ready.connect
def _start_feed_worker_threads(sender: Any, **kwargs: Any) -> None:
    # Only workers that take feeds may be chosen for one (a worker started with -Q celery is not); each of them
    # also runs the dispatch rounds, so that feeds are placed and taken over for as long as any one of them lives.
    if FEED_QUEUE in sender.app.amqp.queues.consume_from:
        client = redis_connection()
        FeedWorkerHeartbeat(
            client=client, node=sender.hostname, interval=heartbeat_interval(), stop_event=shutting_down
        ).start()
        supervision.FeedDispatcher(
            client=client,
            node=sender.hostname,
            enqueue=_enqueue_feed,
            interval=supervision.DISPATCH_INTERVAL,
            first_round_after=supervision.FIRST_ROUND_DELAY,
            stop_event=shutting_down,
        ).start()


# No time limit and no late ack: the task runs for as long as the worker holds the lease,
# and a redelivered copy would only find the lease taken (Celery docs, "long running tasks").
@shared_task(name="ingest.run_feed", bind=True, ignore_result=True, acks_late=False)
def run_feed(self: Task, asset: str) -> str:
    return supervision.run_asset_feed(
        client=redis_connection(), asset=asset, worker=self.request.hostname or "", stop_event=shutting_down
    )


# The feed workers run the rounds themselves (supervision.FeedDispatcher); the task stays for a round by hand
# (`celery -A optionsite call ingest.dispatch_feeds`) and for a beat of an older release during an upgrade.
@shared_task(name="ingest.dispatch_feeds", ignore_result=True)
def dispatch_feeds() -> list[str]:
    return supervision.dispatch_feeds(
        client=redis_connection(),
        enqueue=_enqueue_feed,
    )


def _enqueue_feed(asset: str, node: str | None) -> None:
    """Send the feed task to ``node``'s own queue (``CELERY_WORKER_DIRECT``), or to the shared one."""
    # A copy that waited a minute in the queue is stale: the next dispatch sends a fresh one.
    queue = FEED_QUEUE if node is None else worker_direct(node)
    run_feed.apply_async(args=(asset,), queue=queue, expires=60)


@shared_task(name="ingest.refresh_instruments", ignore_result=True)
def refresh_instruments() -> int:
    assets = list(Asset.objects.enabled().values_list("symbol", flat=True))
    return supervision.request_refresh(client=redis_connection(), assets=assets)
