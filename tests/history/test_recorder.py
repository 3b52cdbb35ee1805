"""Taking snapshots from what the feed's own code wrote to Redis, into the project database.

Run on SQLite here, and on PostgreSQL by ``test_on_postgresql.py`` (this module again, with ``DATABASE_URL``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis

from assets.models import Asset
from history import tasks
from history.models import ContractSnapshot, ExpirySnapshot, TermSnapshot
from history.recorder import record_snapshots, snapshot_time
from ingest.keys import analytics_key, chain_key
from tests.history.conftest import Published

pytestmark = pytest.mark.django_db

INTERVAL = 60


def now_on_grid() -> datetime:
    return snapshot_time(now=datetime.now(UTC), interval=INTERVAL)


def quoted(published: Published) -> list[str]:
    return sorted(row["symbol"] for row in published.rows if row["mark_price"] is not None)


def stored(client: redis.Redis, key: str, field: str) -> Any:
    """One field of a Redis hash, as the JSON it holds."""
    value = client.hget(key, field)
    assert value is not None, (key, field)
    return orjson.loads(value)


def recorded_symbols(asset: str) -> list[str]:
    return sorted(ContractSnapshot.objects.filter(asset=asset).values_list("symbol", flat=True))


def test_a_snapshot_time_is_on_the_intervals_grid() -> None:
    now = datetime(2026, 12, 1, 20, 41, 59, 999_000, tzinfo=UTC)
    assert snapshot_time(now=now, interval=60) == datetime(2026, 12, 1, 20, 41, tzinfo=UTC)
    assert snapshot_time(now=now, interval=300) == datetime(2026, 12, 1, 20, 40, tzinfo=UTC)
    assert snapshot_time(now=now.replace(second=0, microsecond=0), interval=60) == now.replace(second=0, microsecond=0)


def test_the_task_records_every_enabled_asset_and_not_a_disabled_one(publish: Callable[..., Published]) -> None:
    Asset.objects.filter(symbol="SOL").update(enabled=False)
    btc, eth, _ = publish("BTC"), publish("ETH"), publish("SOL")

    assert tasks.record_snapshots() == {"BTC": len(quoted(btc)), "ETH": len(quoted(eth))}

    assert recorded_symbols("BTC") == quoted(btc)
    assert recorded_symbols("ETH") == quoted(eth)
    assert not ContractSnapshot.objects.filter(asset="SOL").exists()
    assert not ExpirySnapshot.objects.filter(asset="SOL").exists()
    for asset, published in (("BTC", btc), ("ETH", eth)):
        pairs = {(row["expiry"], row["settle"]) for row in published.rows}
        assert set(ExpirySnapshot.objects.filter(asset=asset).values_list("expiry", "settle")) == pairs
        assert TermSnapshot.objects.filter(asset=asset).exists()
    taken = {snapshot.taken_at for snapshot in ContractSnapshot.objects.all()}
    assert len(taken) == 1
    assert taken.pop().timestamp() % INTERVAL == 0


def test_recording_the_same_time_twice_adds_nothing(
    publish: Callable[..., Published], redis_client: redis.Redis
) -> None:
    publish("ETH")
    taken_at = now_on_grid()
    record_snapshots(client=redis_client, assets=["ETH"], taken_at=taken_at, interval=INTERVAL)
    counts = (ContractSnapshot.objects.count(), ExpirySnapshot.objects.count(), TermSnapshot.objects.count())
    assert min(counts) > 0

    record_snapshots(client=redis_client, assets=["ETH"], taken_at=taken_at, interval=INTERVAL)
    assert (ContractSnapshot.objects.count(), ExpirySnapshot.objects.count(), TermSnapshot.objects.count()) == counts

    record_snapshots(client=redis_client, assets=["ETH"], taken_at=taken_at + timedelta(seconds=60), interval=INTERVAL)
    assert ContractSnapshot.objects.count() == 2 * counts[0]


def test_the_recorded_values_are_what_redis_held(publish: Callable[..., Published], redis_client: redis.Redis) -> None:
    publish("ETH")
    taken_at = now_on_grid()
    record_snapshots(client=redis_client, assets=["ETH"], taken_at=taken_at, interval=INTERVAL)

    contract = ContractSnapshot.objects.filter(asset="ETH", mark_iv__isnull=False).order_by("symbol").first()
    assert contract is not None
    held = stored(redis_client, chain_key("ETH"), contract.symbol)
    assert contract.taken_at == taken_at
    for name in ("mark_price", "mark_iv", "bid_iv", "ask_price", "open_interest", "delta", "underlying_price"):
        assert getattr(contract, name) == held[name], name
    assert (contract.expiry, contract.settle, contract.strike, contract.type) == (
        held["expiry"],
        held["settle"],
        held["strike"],
        held["type"],
    )

    analytics = stored(redis_client, analytics_key("ETH"), "asset")
    summary = next(summary for summary in analytics["expiries"] if summary["atm_iv"] is not None)
    expiry = ExpirySnapshot.objects.get(asset="ETH", expiry=summary["expiry"], settle=summary["settle"])
    assert expiry.atm_iv == summary["atm_iv"]
    assert (expiry.forward, expiry.rr_25d, expiry.max_pain) == (
        summary["forward"],
        summary["rr_25d"],
        summary["max_pain"],
    )
    assert expiry.delivery == datetime.fromtimestamp(summary["delivery_ms"] / 1000, UTC)

    structure = next(structure for structure in analytics["term_structures"] if structure["settle"] == "USDT")
    thirty = next(maturity for maturity in structure["constant_maturities"] if maturity["days"] == 30)
    assert thirty["atm_iv"] is not None, "the expiries bracket 30 days"
    assert TermSnapshot.objects.get(asset="ETH", settle="USDT", days=30).atm_iv == thirty["atm_iv"]


def test_bad_json_in_one_asset_leaves_the_others_recorded(
    publish: Callable[..., Published], redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    btc, _, sol = publish("BTC"), publish("ETH"), publish("SOL")
    redis_client.hset(analytics_key("ETH"), "asset", b"{not json")
    spoiled = quoted(sol)[0]
    redis_client.hset(chain_key("SOL"), spoiled, b'{"symbol": "' + spoiled.encode())

    with caplog.at_level(logging.WARNING, logger="history.recorder"):
        recorded = record_snapshots(
            client=redis_client, assets=["BTC", "ETH", "SOL"], taken_at=now_on_grid(), interval=INTERVAL
        )

    assert set(recorded) == {"BTC", "SOL"}
    assert recorded_symbols("BTC") == quoted(btc)
    assert not ContractSnapshot.objects.filter(asset="ETH").exists()
    assert recorded_symbols("SOL") == [symbol for symbol in quoted(sol) if symbol != spoiled]
    assert ExpirySnapshot.objects.filter(asset="SOL").exists()
    messages = [record.getMessage() for record in caplog.records]
    assert any("ETH not recorded" in message and "do not parse" in message for message in messages), messages
    assert any("SOL: 1 chain rows do not parse" in message for message in messages), messages


def test_a_contract_row_of_the_wrong_shape_is_left_out_alone(
    publish: Callable[..., Published], redis_client: redis.Redis
) -> None:
    eth = publish("ETH")
    first, second = quoted(eth)[:2]
    row = stored(redis_client, chain_key("ETH"), first)
    redis_client.hset(chain_key("ETH"), first, orjson.dumps({**row, "mark_iv": "0.5"}))
    redis_client.hset(chain_key("ETH"), second, b"[1, 2]")
    record_snapshots(client=redis_client, assets=["ETH"], taken_at=now_on_grid(), interval=INTERVAL)
    assert recorded_symbols("ETH") == [symbol for symbol in quoted(eth) if symbol not in (first, second)]


def test_an_asset_whose_feed_wrote_nothing_or_stopped_long_ago_is_left_out(
    publish: Callable[..., Published], redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    publish("BTC", analytics_age=3 * INTERVAL + 5)
    publish("ETH", analytics_age=3 * INTERVAL - 5)
    with caplog.at_level(logging.WARNING, logger="history.recorder"):
        recorded = record_snapshots(
            client=redis_client, assets=["BTC", "ETH", "SOL"], taken_at=now_on_grid(), interval=INTERVAL
        )
    assert set(recorded) == {"ETH"}
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "SOL not recorded" in messages
    assert "its feed wrote no chain" in messages
    assert "BTC not recorded" in messages
    assert "more than 3 intervals" in messages


def test_an_asset_deleted_since_keeps_its_history(publish: Callable[..., Published], redis_client: redis.Redis) -> None:
    publish("SOL")
    record_snapshots(client=redis_client, assets=["SOL"], taken_at=now_on_grid(), interval=INTERVAL)
    Asset.objects.filter(symbol="SOL").delete()
    assert ContractSnapshot.objects.filter(asset="SOL").exists()
    assert ExpirySnapshot.objects.filter(asset="SOL").exists()
