"""When the feed publishes analytics, and what it stores: ``analytics.publisher`` on real chains' rows."""

from __future__ import annotations

from typing import cast

import orjson
import redis

from analytics.publisher import AnalyticsPublisher, compute_analytics
from ingest.keys import analytics_key
from ingest.normalize import ContractRow
from optionsite.redis_client import execute_packed
from tests.chain.market import quoted_rows, real_contracts

NOW_MS = 1_756_713_600_000  # 2025-09-01 08:00 UTC, the day of the symbol file


def btc_rows(limit_expiries: int | None = 3) -> list[ContractRow]:
    return quoted_rows(real_contracts("BTC", limit_expiries=limit_expiries), index_price=110_000.0, now=NOW_MS)


def test_it_publishes_at_once_then_at_most_once_an_interval_while_the_chain_changes() -> None:
    rows = btc_rows()
    publisher = AnalyticsPublisher("BTC", interval=1.0)
    first = publisher.due(rows, now=100.0, now_ms=NOW_MS)
    assert first is not None
    publisher.published(first, now=100.0)

    assert publisher.due(rows, now=100.5, now_ms=NOW_MS) is None, "nothing changed"
    publisher.chain_changed()
    assert publisher.due(rows, now=100.5, now_ms=NOW_MS) is None, "changed, but within the interval"
    later = publisher.due(rows, now=101.0, now_ms=NOW_MS + 1000)
    assert later is not None
    publisher.published(later, now=101.0)
    assert publisher.due(rows, now=105.0, now_ms=NOW_MS) is None, "nothing changed since"


def test_analytics_wait_while_the_feed_is_behind() -> None:
    rows = btc_rows()
    publisher = AnalyticsPublisher("BTC")
    assert publisher.due(rows, now=100.0, now_ms=NOW_MS, feed_behind=True) is None
    assert publisher.due(rows, now=100.1, now_ms=NOW_MS, feed_behind=False) is not None


def test_analytics_that_were_not_stored_stay_due() -> None:
    rows = btc_rows()
    publisher = AnalyticsPublisher("BTC")
    assert publisher.due(rows, now=100.0, now_ms=NOW_MS) is not None
    # The flush failed: published() never came.
    assert publisher.due(rows, now=100.1, now_ms=NOW_MS) is not None


def test_it_stores_the_asset_and_every_expiry_and_settle_coin_and_drops_a_delivered_expiry() -> None:
    rows = btc_rows()
    publisher = AnalyticsPublisher("BTC")
    first = publisher.due(rows, now=100.0, now_ms=NOW_MS)
    assert first is not None
    publisher.published(first, now=100.0)
    multi, delete, command, execute = first.commands
    assert (multi, delete, execute) == (("MULTI",), ("DEL", analytics_key("BTC")), ("EXEC",))
    assert command[:2] == ("HSET", analytics_key("BTC"))
    stored = {str(name): value for name, value in zip(command[2::2], command[3::2], strict=True)}
    assert all(isinstance(value, bytes | str) for value in stored.values())
    pairs = {(row["expiry"], row["settle"]) for row in rows}
    assert set(stored) == {"ts", "asset"} | {f"{expiry}/{settle}" for expiry, settle in pairs}
    assert stored["ts"] == str(NOW_MS)
    assert orjson.loads(cast(bytes, stored["asset"]))["now_ms"] == NOW_MS
    assert first.event["analytics"] == stored["asset"]
    assert first.event["expiries"] == {name: value for name, value in stored.items() if "/" in name}

    delivered = min(rows, key=lambda row: row["delivery_ms"])["expiry"]
    publisher.chain_changed()
    after = publisher.due([row for row in rows if row["expiry"] != delivered], now=102.0, now_ms=NOW_MS)
    assert after is not None
    hset, hdel = after.commands
    assert hset[:2] == ("HSET", analytics_key("BTC"))
    assert hdel[:2] == ("HDEL", analytics_key("BTC"))
    assert set(hdel[2:]) == {f"{delivered}/{settle}" for expiry, settle in pairs if expiry == delivered}


def test_each_expiry_field_holds_that_expiry_and_coin_with_its_series() -> None:
    rows = btc_rows()
    analytics = compute_analytics(rows=rows, now_ms=NOW_MS)
    for name, raw in analytics.expiries_json.items():
        detail = orjson.loads(raw)
        assert f"{detail['expiry']}/{detail['settle']}" == name
        strikes = sorted(
            {row["strike"] for row in rows if (row["expiry"], row["settle"]) == (detail["expiry"], detail["settle"])}
        )
        assert [level["strike"] for level in detail["by_strike"]] == strikes
    summaries = orjson.loads(analytics.asset_json)["expiries"]
    assert all("by_strike" not in summary for summary in summaries)


def test_a_feeds_first_analytics_replace_what_an_earlier_run_left_in_redis(redis_client: redis.Redis) -> None:
    rows = btc_rows()
    key = analytics_key("BTC")
    redis_client.hset(key, mapping={"1JAN20/USDT": b"{}", "asset": b"{}"})  # a run before, an expiry since delivered
    publisher = AnalyticsPublisher("BTC")
    publication = publisher.due(rows, now=100.0, now_ms=NOW_MS)
    assert publication is not None
    execute_packed(redis_client, publication.commands)
    stored = cast(dict[bytes, bytes], redis_client.hgetall(key))
    assert b"1JAN20/USDT" not in stored
    assert orjson.loads(stored[b"asset"])["now_ms"] == NOW_MS
    assert {name.decode() for name in stored} == {"ts", "asset", *publication.fields}
