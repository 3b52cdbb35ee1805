"""Pruning removes only what is past its kind's retention, in batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from history import tasks
from history.models import ContractSnapshot, ExpirySnapshot, TermSnapshot
from history.retention import prune_history

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def taken(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def snapshots_at(taken_at: datetime, *, contracts: int = 3) -> None:
    ContractSnapshot.objects.bulk_create(
        ContractSnapshot(
            asset="ETH",
            symbol=f"ETH-26DEC26-{4000 + 100 * number}-C-USDT",
            expiry="26DEC26",
            settle="USDT",
            strike=4000.0 + 100 * number,
            type="call",
            taken_at=taken_at,
            mark_iv=0.6,
        )
        for number in range(contracts)
    )
    ExpirySnapshot.objects.create(
        asset="ETH",
        expiry="26DEC26",
        settle="USDT",
        taken_at=taken_at,
        delivery=datetime(2026, 12, 26, 8, tzinfo=UTC),
        contracts=contracts,
    )
    TermSnapshot.objects.create(asset="ETH", settle="USDT", days=30, taken_at=taken_at, atm_iv=0.6)


def kept(model: type[ContractSnapshot | ExpirySnapshot | TermSnapshot]) -> list[datetime]:
    return sorted(set(model.objects.values_list("taken_at", flat=True)))


def test_it_removes_only_the_rows_past_their_kinds_retention() -> None:
    for days_ago in (40, 31, 29, 8, 6.99, 0):
        snapshots_at(taken(days_ago))

    deleted = prune_history(now=NOW, contract_retention_days=7, expiry_retention_days=30, batch_size=2)

    assert deleted == {"contracts": 4 * 3, "expiries": 2, "maturities": 2}
    assert kept(ContractSnapshot) == [taken(6.99), taken(0)]
    assert kept(ExpirySnapshot) == [taken(29), taken(8), taken(6.99), taken(0)]
    assert kept(TermSnapshot) == kept(ExpirySnapshot)


def test_a_row_exactly_at_the_retention_is_kept() -> None:
    snapshots_at(taken(7))
    prune_history(now=NOW, contract_retention_days=7, expiry_retention_days=7)
    assert ContractSnapshot.objects.count() == 3


def test_it_deletes_more_rows_than_a_batch_over_several_batches() -> None:
    for minutes in range(10):
        snapshots_at(taken(10) + timedelta(minutes=minutes), contracts=7)
    assert prune_history(now=NOW, contract_retention_days=7, expiry_retention_days=30, batch_size=9) == {
        "contracts": 70,
        "expiries": 0,
        "maturities": 0,
    }
    assert not ContractSnapshot.objects.exists()


@override_settings(HISTORY_CONTRACT_RETENTION_DAYS=1, HISTORY_EXPIRY_RETENTION_DAYS=2)
def test_the_task_prunes_by_the_retention_settings() -> None:
    now = datetime.now(UTC)
    for days_ago in (3, 1.5, 0.5):
        snapshots_at(now - timedelta(days=days_ago))
    assert tasks.prune() == {"contracts": 6, "expiries": 1, "maturities": 1}
