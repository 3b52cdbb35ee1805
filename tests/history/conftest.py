"""Chains and analytics in the test Redis, written by the project's own code, for the history's tests.

``publish("ETH", limit_expiries=2)`` lists the asset's real contracts, moved so that the nearest expiry is two days
away (the listing of 2025-09-01 then spans a year: every constant maturity is bracketed), and quotes them
(``tests.chain.market``, the ingest's normalisation and writer), then computes and stores their analytics as a feed
does (``analytics.publisher``). Django is imported inside the fixtures: pytest loads this file before the root conftest
has settled the test settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

ASSETS = ("BTC", "ETH", "SOL")


@dataclass(frozen=True)
class Published:
    rows: list[Any]
    analytics_ts: int


def near_contracts(asset: str, *, limit_expiries: int | None) -> list[Any]:
    """The asset's real contracts, every expiry moved by the same number of days: the first is in two days."""
    from ingest.symbols import format_symbol, parse_symbol
    from tests.chain.market import real_contracts

    contracts = real_contracts(asset, limit_expiries=limit_expiries)
    shift = datetime.now(UTC).date() + timedelta(days=2) - min(contract.expiry for contract in contracts).date()
    return [
        parse_symbol(
            format_symbol(
                base=contract.base,
                expiry=contract.expiry.date() + shift,
                strike=contract.strike,
                option_type=contract.option_type,
                settle=contract.settle,
            )
        )
        for contract in contracts
    ]


@pytest.fixture(autouse=True)
def _no_chain_in_redis(redis_client: redis.Redis) -> Iterator[None]:
    from ingest.store import purge_asset

    for asset in ASSETS:
        purge_asset(redis_client, asset=asset)
    yield
    for asset in ASSETS:
        purge_asset(redis_client, asset=asset)


@pytest.fixture
def publish(redis_client: redis.Redis) -> Callable[..., Published]:
    from analytics.publisher import AnalyticsPublisher
    from optionsite.clock import now_ms
    from optionsite.redis_client import execute_packed
    from tests.chain.market import fill_chain

    def publish(asset: str, *, limit_expiries: int | None = None, analytics_age: float = 0.0) -> Published:
        contracts = near_contracts(asset, limit_expiries=limit_expiries)
        rows = fill_chain(redis_client, asset=asset, contracts=contracts)
        computed_at = now_ms() - int(analytics_age * 1000)
        publication = AnalyticsPublisher(asset).due(rows, now=0.0, now_ms=computed_at)
        assert publication is not None
        execute_packed(redis_client, publication.commands)
        return Published(rows=rows, analytics_ts=computed_at)

    return publish
