"""Celery tasks of the history, routed to the ``history`` queue (settings.CELERY_TASK_ROUTES): never a feed's
process. The logic lives in ``history.recorder`` and ``history.retention``."""

from __future__ import annotations

from datetime import UTC, datetime

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from assets.models import Asset
from history import recorder
from history.retention import prune_history
from optionsite.redis_client import redis_connection


# A database briefly locked (SQLite during a prune batch) is retried; the retry takes the same snapshot time while
# it is within the same interval, and adds nothing for the assets already written.
@shared_task(
    name="history.record_snapshots",
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    max_retries=3,
    retry_backoff=2,
)
def record_snapshots() -> dict[str, int]:
    interval = settings.HISTORY_INTERVAL
    recorded = recorder.record_snapshots(
        client=redis_connection(),
        assets=Asset.objects.enabled().values_list("symbol", flat=True),
        taken_at=recorder.snapshot_time(now=datetime.now(UTC), interval=interval),
        interval=interval,
    )
    return {asset: counts.contracts for asset, counts in recorded.items()}


@shared_task(name="history.prune", ignore_result=True)
def prune() -> dict[str, int]:
    return prune_history(
        now=datetime.now(UTC),
        contract_retention_days=settings.HISTORY_CONTRACT_RETENTION_DAYS,
        expiry_retention_days=settings.HISTORY_EXPIRY_RETENTION_DAYS,
    )
