"""Chains in the test Redis, written by the ingest's own writer (see ``tests.chain.market``).

Django is imported inside the fixtures: pytest loads this file before the root conftest
has settled the test settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

ASSETS = ("BTC", "ETH", "SOL")


@pytest.fixture(autouse=True)
def _api_state_reset(redis_client: redis.Redis) -> Iterator[None]:
    """Each test starts with no chain in Redis, no throttle history and no cached asset flags."""
    from chain.queries import forget_asset_states
    from ingest.store import purge_asset
    from optionsite.redis_client import redis_key

    for asset in ASSETS:
        purge_asset(redis_client, asset=asset)
    throttle_counters = list(redis_client.scan_iter(match=redis_key("throttle:*"), count=1000))
    if throttle_counters:
        redis_client.delete(*throttle_counters)
    forget_asset_states()
    yield
    for asset in ASSETS:
        purge_asset(redis_client, asset=asset)
    forget_asset_states()


@pytest.fixture
def fill(redis_client: redis.Redis) -> Callable[..., list[Any]]:
    """``fill("ETH", limit_expiries=2, quoted=True, live=True)``: a chain of real contracts, on demand."""
    from tests.chain.market import fill_chain, real_contracts, write_status

    def fill_asset(
        asset: str, *, limit_expiries: int | None = None, quoted: bool = True, live: bool = True
    ) -> list[Any]:
        contracts = real_contracts(asset, limit_expiries=limit_expiries)
        rows = fill_chain(redis_client, asset=asset, contracts=contracts, quoted=quoted)
        if live:
            write_status(redis_client, asset=asset)
        return rows

    return fill_asset


@pytest.fixture
def btc_chain(fill: Callable[..., list[Any]]) -> list[Any]:
    """BTC's 778 real contracts, every one quoted, and a live feed."""
    return fill("BTC")
