"""Celery tasks of the ingest; the logic lives in ``ingest.supervision``."""

from __future__ import annotations

import threading
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_shutting_down

from assets.models import Asset
from ingest import supervision
from optionsite.redis_client import redis_connection

FEED_QUEUE = "feeds"

# Set when the worker begins a warm shutdown (SIGTERM): every feed in this process stops,
# flushes, closes its sockets and releases its lease, so that the worker can exit.
shutting_down = threading.Event()


@worker_shutting_down.connect
def _stop_feeds(**kwargs: Any) -> None:
    shutting_down.set()


# No time limit and no late ack: the task runs for as long as the worker holds the lease,
# and a redelivered copy would only find the lease taken (Celery docs, "long running tasks").
@shared_task(name="ingest.run_feed", bind=True, ignore_result=True, acks_late=False)
def run_feed(self: Task, asset: str) -> str:
    return supervision.run_asset_feed(
        client=redis_connection(), asset=asset, worker=self.request.hostname or "", stop_event=shutting_down
    )


@shared_task(name="ingest.dispatch_feeds", ignore_result=True)
def dispatch_feeds() -> list[str]:
    return supervision.dispatch_feeds(
        client=redis_connection(),
        enqueue=_enqueue_feed,
    )


def _enqueue_feed(asset: str) -> None:
    # A copy that waited a minute in the queue is stale: the next dispatch sends a fresh one.
    run_feed.apply_async(args=(asset,), queue=FEED_QUEUE, expires=60)


@shared_task(name="ingest.refresh_instruments", ignore_result=True)
def refresh_instruments() -> int:
    assets = list(Asset.objects.enabled().values_list("symbol", flat=True))
    return supervision.request_refresh(client=redis_connection(), assets=assets)
