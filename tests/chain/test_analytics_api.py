"""The analytics the feed publishes, served by the REST API and the live chain's WebSocket from what it stored:
the real ASGI application, channels-redis and Redis; the publisher is the feed's own (``analytics.publisher``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from channels.layers import get_channel_layer
from django.test import AsyncClient

from analytics.publisher import AnalyticsPublisher
from ingest.keys import analytics_key, chain_group
from ingest.normalize import ContractRow
from optionsite.clock import now_ms
from optionsite.redis_client import execute_packed
from tests.chain.test_consumers import connected, expiries_of, receive

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


async def publish_analytics(redis_client: redis.Redis, rows: list[ContractRow], *, send: bool = True) -> None:
    """What a feed's flush does when analytics are due: store them, then send the event to the asset's group."""
    publication = AnalyticsPublisher(rows[0]["asset"]).due(rows, now=time.monotonic(), now_ms=now_ms())
    assert publication is not None
    execute_packed(redis_client, publication.commands)
    if send:
        await get_channel_layer().group_send(chain_group(rows[0]["asset"]), dict(publication.event))


def stored(redis_client: redis.Redis, asset: str, field: str) -> Any:
    raw = redis_client.hget(analytics_key(asset), field)
    assert raw is not None, f"no {field} in {analytics_key(asset)}"
    return orjson.loads(raw)


async def api(path: str, status: int = 200) -> dict[str, Any]:
    response = await AsyncClient().get(path)
    assert response.status_code == status, response.content[:300]
    return orjson.loads(response.content)


async def test_the_api_the_websocket_and_redis_carry_the_same_analytics(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    rows = fill("BTC", limit_expiries=3)
    expiry = expiries_of(rows)[0]
    viewer, _ = await connected(f"/ws/chain/BTC/?expiry={expiry}&settle=USDT")
    await publish_analytics(redis_client, rows)

    frame = await receive(viewer)
    assert (frame["type"], frame["seq"], frame["asset"]) == ("analytics", 2, "BTC")
    in_redis = stored(redis_client, "BTC", "asset")
    expiry_in_redis = stored(redis_client, "BTC", f"{expiry}/USDT")
    assert frame["analytics"] == in_redis
    assert frame["expiry"] == expiry_in_redis
    assert frame["ts"] == in_redis["now_ms"]
    assert expiry_in_redis["atm_iv"] is not None, expiry_in_redis["missing"]
    # Where the 25- and 10-delta IVs were read, for the smile on the strike axis: null exactly when the IV is.
    for name in ("call_25d", "put_25d", "call_10d", "put_10d"):
        assert (expiry_in_redis[f"{name}_strike"] is None) == (expiry_in_redis[f"{name}_iv"] is None), name
        if expiry_in_redis[f"{name}_strike"] is None:
            assert expiry_in_redis["missing"][f"{name}_strike"] == expiry_in_redis["missing"][f"{name}_iv"]

    whole = await api("/api/analytics/BTC/")
    assert whole["analytics"] == in_redis
    assert whole["computed_ts"] == in_redis["now_ms"]
    assert whole["feed"]["state"] == "live"
    one = await api(f"/api/analytics/btc/{expiry}/?settle=usdt")
    assert (one["asset"], one["expiry"], one["settle"]) == ("BTC", expiry, "USDT")
    assert one["analytics"] == expiry_in_redis
    await viewer.disconnect()


async def test_a_viewer_gets_the_latest_analytics_right_after_its_snapshot_and_after_a_view_change(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    rows = fill("BTC", limit_expiries=3)
    first, second = expiries_of(rows)[:2]
    await publish_analytics(redis_client, rows, send=False)

    viewer, snapshot = await connected(f"/ws/chain/BTC/?expiry={first}")
    frame = await receive(viewer)
    assert (frame["type"], frame["seq"]) == ("analytics", snapshot["seq"] + 1)
    settle = "USDT" if any(row["expiry"] == first and row["settle"] == "USDT" for row in rows) else "USDC"
    assert frame["expiry"] == stored(redis_client, "BTC", f"{first}/{settle}")

    await viewer.send_to(text_data=orjson.dumps({"type": "view", "expiry": second, "settle": "USDC"}).decode())
    assert (await receive(viewer))["type"] == "snapshot"
    frame = await receive(viewer)
    assert frame["type"] == "analytics"
    assert (frame["expiry"] or {}).get("expiry", second) == second
    await viewer.disconnect()

    flat, _ = await connected("/ws/chain/BTC/")
    frame = await receive(flat)
    assert frame["type"] == "analytics"
    assert frame["expiry"] is None, "a view of every expiry gets the asset's analytics only"
    await flat.disconnect()


async def test_before_the_feed_published_analytics_the_api_says_so_and_viewers_get_none(
    fill: Callable[..., list[ContractRow]],
) -> None:
    rows = fill("BTC", limit_expiries=1)
    answer = await api("/api/analytics/BTC/")
    assert (answer["analytics"], answer["computed_ts"]) == (None, None)
    viewer, _ = await connected("/ws/chain/BTC/")
    assert await viewer.receive_nothing(timeout=0.3)
    await viewer.disconnect()
    assert (await api(f"/api/analytics/BTC/{rows[0]['expiry']}/"))["analytics"] is None


async def test_it_narrows_the_analytics_to_one_settle_coin_and_refuses_an_unlisted_expiry(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    rows = fill("BTC")
    await publish_analytics(redis_client, rows, send=False)
    usdc = (await api("/api/analytics/BTC/?settle=USDC"))["analytics"]
    assert usdc["expiries"], "the chain has USDC contracts"
    assert {summary["settle"] for summary in usdc["expiries"]} == {"USDC"}
    assert {term["settle"] for term in usdc["term_structures"]} == {"USDC"}
    assert usdc["totals"] is None, "totals add both coins"

    missing = await api("/api/analytics/BTC/1JAN20/", status=404)
    assert "1JAN20" in str(missing)
    bad = await api("/api/analytics/BTC/31FEB27/", status=400)
    assert "31FEB27" in bad["expiry"][0]
    await api("/api/analytics/BTC/?settle=EUR", status=400)
