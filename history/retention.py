"""Pruning: rows older than their kind's retention are deleted, in batches (docs/history.md, "Retention").

Each batch is a statement and a transaction of its own: a month of per-contract rows is tens of millions, and one
DELETE of them would hold SQLite's single write lock (every snapshot waiting on it) for minutes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models

from history.models import ContractSnapshot, ExpirySnapshot, TermSnapshot

# Rows per DELETE: a few hundred milliseconds of SQLite's write lock on a laptop (docs/history.md).
PRUNE_BATCH_SIZE = 20_000


def prune_history(
    *, now: datetime, contract_retention_days: int, expiry_retention_days: int, batch_size: int = PRUNE_BATCH_SIZE
) -> dict[str, int]:
    """Delete the snapshots taken before their retention; rows deleted, per table. Per-expiry and term rows share
    ``expiry_retention_days``."""
    return {
        "contracts": prune_older(
            ContractSnapshot, before=now - timedelta(days=contract_retention_days), batch=batch_size
        ),
        "expiries": prune_older(ExpirySnapshot, before=now - timedelta(days=expiry_retention_days), batch=batch_size),
        "maturities": prune_older(TermSnapshot, before=now - timedelta(days=expiry_retention_days), batch=batch_size),
    }


def prune_older(model: type[models.Model], *, before: datetime, batch: int) -> int:
    """Delete ``model``'s rows taken before ``before``, ``batch`` at a time, oldest first."""
    deleted = 0
    while True:
        # The primary keys of the oldest batch, by the index that starts with taken_at; the models have no
        # relations or signals, so the delete is one DELETE ... WHERE id IN (SELECT ... LIMIT batch).
        oldest = model._default_manager.filter(taken_at__lt=before).order_by("taken_at").values("pk")[:batch]
        count, _ = model._default_manager.filter(pk__in=oldest).delete()
        deleted += count
        if count < batch:
            return deleted
