"""Taking a snapshot: what the feeds last wrote to Redis, copied into the history tables (docs/history.md).

Per asset, one pipeline reads the chain (``chain:<ASSET>``, every contract's row) and the analytics
(``analytics:<ASSET>``, fields ``ts`` and ``asset``: every expiry's summary and the term structures), and one
transaction writes the rows. An asset is left out of a snapshot when its feed wrote no chain, when its analytics are
missing or unreadable, or when they are older than ``STALE_INTERVALS`` intervals: its feed is stopped or far behind,
and the chain in Redis is then its last state, not the market's. A contract row that does not parse is left out
alone. Nothing of this stops the other assets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from django.db import transaction

from history.models import ContractSnapshot, ExpirySnapshot, TermSnapshot
from ingest.keys import ANALYTICS_ASSET_FIELD, ANALYTICS_TS_FIELD, analytics_key, chain_key
from optionsite.clock import now_ms

logger = logging.getLogger(__name__)

# Analytics are rewritten every second while a feed is live (analytics.publisher.ANALYTICS_INTERVAL) and not while
# it is behind; older than this many intervals, the asset's feed has stopped or is minutes behind.
STALE_INTERVALS = 3

# Rows per INSERT: SQLite allows 32,766 parameters to a statement (since 3.32), a contract row has 20.
BATCH_SIZE = 1000

# Copied from each contract's chain row as they are (docs/redis.md, "A contract's fields").
CONTRACT_MEASURES = (
    "mark_price",
    "mark_iv",
    "bid_price",
    "bid_iv",
    "ask_price",
    "ask_iv",
    "open_interest",
    "volume_24h",
    "delta",
    "gamma",
    "vega",
    "theta",
    "underlying_price",
)
# Copied from each ``ExpirySummary`` of the asset's analytics as they are (docs/analytics.md).
EXPIRY_MEASURES = (
    "forward",
    "index_price",
    "basis_annualised",
    "atm_iv",
    "rr_25d",
    "bf_25d",
    "rr_10d",
    "bf_10d",
    "straddle",
    "implied_move",
    "max_pain",
    "call_open_interest",
    "put_open_interest",
    "put_call_open_interest",
    "call_volume_24h",
    "put_volume_24h",
    "put_call_volume_24h",
    "net_gex",
)


class UnusableSnapshot(ValueError):
    """An asset's state in Redis that is not recorded; the message says why."""


@dataclass(frozen=True)
class Recorded:
    """Rows in one asset's snapshot (those already recorded for that time count too: they are not told apart)."""

    contracts: int
    expiries: int
    maturities: int


def snapshot_time(*, now: datetime, interval: int) -> datetime:
    """``now`` floored to the ``interval`` grid (seconds since the epoch): a retry within the same interval takes
    the same snapshot time, so that it adds nothing."""
    seconds = int(now.timestamp()) // interval * interval
    return datetime.fromtimestamp(seconds, UTC)


def record_snapshots(
    *, client: redis.Redis, assets: Iterable[str], taken_at: datetime, interval: int
) -> dict[str, Recorded]:
    """Record each of ``assets`` at ``taken_at``; the assets recorded, with their counts. An asset that cannot be
    recorded is logged and left out."""
    recorded = {}
    for asset in assets:
        try:
            recorded[asset] = record_asset_snapshot(client=client, asset=asset, taken_at=taken_at, interval=interval)
        except UnusableSnapshot as exc:
            logger.warning("history: %s not recorded at %s: %s", asset, taken_at.isoformat(), exc)
    return recorded


def record_asset_snapshot(*, client: redis.Redis, asset: str, taken_at: datetime, interval: int) -> Recorded:
    """One asset's snapshot at ``taken_at``, from one pipeline, written in one transaction."""
    pipe = client.pipeline(transaction=False)
    pipe.hvals(chain_key(asset))
    pipe.hmget(analytics_key(asset), [ANALYTICS_TS_FIELD, ANALYTICS_ASSET_FIELD])
    chain, (analytics_ts, analytics_json) = pipe.execute()
    if not chain:
        raise UnusableSnapshot("its feed wrote no chain")
    analytics = _fresh_analytics(analytics_ts, analytics_json, interval=interval)
    contracts = contract_snapshots(asset=asset, chain=chain, taken_at=taken_at)
    expiries = expiry_snapshots(asset=asset, analytics=analytics, taken_at=taken_at)
    maturities = term_snapshots(asset=asset, analytics=analytics, taken_at=taken_at)
    with transaction.atomic():
        # ignore_conflicts: a snapshot time recorded already (a retry, a second beat) keeps its first rows.
        ContractSnapshot.objects.bulk_create(contracts, batch_size=BATCH_SIZE, ignore_conflicts=True)
        ExpirySnapshot.objects.bulk_create(expiries, batch_size=BATCH_SIZE, ignore_conflicts=True)
        TermSnapshot.objects.bulk_create(maturities, batch_size=BATCH_SIZE, ignore_conflicts=True)
    return Recorded(contracts=len(contracts), expiries=len(expiries), maturities=len(maturities))


def _fresh_analytics(ts: bytes | None, analytics_json: bytes | None, *, interval: int) -> Mapping[str, Any]:
    """The analytics read, unless they are missing, unreadable, or older than ``STALE_INTERVALS`` intervals now."""
    if ts is None or analytics_json is None:
        raise UnusableSnapshot("its feed wrote no analytics")
    try:
        age = (now_ms() - int(ts)) / 1000
        analytics = orjson.loads(analytics_json)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise UnusableSnapshot(f"its analytics do not parse: {exc}") from None
    if age > STALE_INTERVALS * interval:
        raise UnusableSnapshot(f"its analytics are {age:.0f} s old (more than {STALE_INTERVALS} intervals)")
    if not isinstance(analytics, dict):
        raise UnusableSnapshot("its analytics are not a JSON object")
    return analytics


def contract_snapshots(*, asset: str, chain: Iterable[bytes], taken_at: datetime) -> list[ContractSnapshot]:
    """The chain's rows that have a quote (a listed contract with no ticker yet has none: nothing to keep)."""
    snapshots = []
    unreadable = 0
    for raw in chain:
        try:
            row = orjson.loads(raw)
            if row["mark_price"] is None:
                continue
            snapshots.append(
                ContractSnapshot(
                    asset=asset,
                    symbol=row["symbol"],
                    expiry=row["expiry"],
                    settle=row["settle"],
                    strike=float(row["strike"]),
                    type=row["type"],
                    taken_at=taken_at,
                    **{name: _number(row[name]) for name in CONTRACT_MEASURES},
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            unreadable += 1
    if unreadable:
        logger.warning("history: %s: %d chain rows do not parse; recorded without them", asset, unreadable)
    return snapshots


def expiry_snapshots(*, asset: str, analytics: Mapping[str, Any], taken_at: datetime) -> list[ExpirySnapshot]:
    try:
        return [
            ExpirySnapshot(
                asset=asset,
                expiry=summary["expiry"],
                settle=summary["settle"],
                taken_at=taken_at,
                delivery=datetime.fromtimestamp(summary["delivery_ms"] / 1000, UTC),
                contracts=int(summary["contracts"]),
                **{name: _number(summary[name]) for name in EXPIRY_MEASURES},
            )
            for summary in analytics["expiries"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise UnusableSnapshot(f"its analytics' expiries do not parse: {exc!r}") from None


def term_snapshots(*, asset: str, analytics: Mapping[str, Any], taken_at: datetime) -> list[TermSnapshot]:
    """The constant maturities that have an ATM IV (one the listed expiries do not bracket has none)."""
    try:
        return [
            TermSnapshot(
                asset=asset,
                settle=structure["settle"],
                days=int(maturity["days"]),
                taken_at=taken_at,
                atm_iv=float(maturity["atm_iv"]),
            )
            for structure in analytics["term_structures"]
            for maturity in structure["constant_maturities"]
            if maturity["atm_iv"] is not None
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise UnusableSnapshot(f"its analytics' term structures do not parse: {exc!r}") from None


def _number(value: object) -> float | None:
    """A JSON number as a float, ``null`` as ``None``; anything else is a row that does not parse."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)
