"""The flusher on its own, against the real Redis: what it stores, and what it retries."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from ingest.config import FeedSettings
from ingest.connections import ConnectionFigures
from ingest.feed import AssetFeed
from ingest.flusher import Flusher, InstrumentRefresh
from ingest.keys import chain_key, contract_key, feed_status_key
from ingest.normalize import ContractRow, static_row
from ingest.snapshots import LatestSnapshots, Snapshot
from ingest.status import FeedStatus, read_feed_status
from ingest.store import purge_asset
from ingest.symbols import parse_symbol
from ingest.throttled_log import RateLimitedLog
from optionsite.clock import now_ms
from optionsite.devstack import free_port
from tests.ingest.conftest import poll

SYMBOLS = ["BTC-26DEC25-65000-C-USDT", "BTC-26DEC25-65000-C"]


def figures(messages: int = 0) -> ConnectionFigures:
    return ConnectionFigures(
        connections=1,
        wanted=1,
        subscribed=2,
        messages=messages,
        last_message_at=0.0,
        data_ts=0,
        rejected=0,
        reconnects=0,
    )


@pytest.fixture
def flusher(redis_client: redis.Redis) -> Iterator[tuple[Flusher, LatestSnapshots]]:
    snapshots = LatestSnapshots()
    contracts = [parse_symbol(symbol) for symbol in SYMBOLS]
    flusher = Flusher(
        asset="BTC",
        settings=FeedSettings(ws_url="ws://unused/v5/public/option", rest_url="http://unused", contract_hashes=True),
        client=redis_client,
        channel_layer=None,
        snapshots=snapshots,
        connections=figures,
        status=FeedStatus(asset="BTC"),
        log=RateLimitedLog(logging.getLogger("test")),
    )
    flusher.store_instruments(
        InstrumentRefresh(contracts=contracts, listed=[static_row(c) for c in contracts], gone=set())
    )
    loop = asyncio.new_event_loop()
    flusher.flush(loop)
    yield flusher, snapshots
    loop.close()
    purge_asset(redis_client, asset="BTC")


def ticker(mark: str, ts: int) -> Snapshot:
    return Snapshot(
        {"markPrice": mark, "markPriceIv": "0.5", "bidPrice": "10", "bidSize": "2", "bidIv": "0.45"}, ts, ts + 5
    )


def test_it_stores_the_latest_snapshot_of_each_contract_once(flusher, redis_client: redis.Redis) -> None:
    feed_flusher, snapshots = flusher
    ts = now_ms()
    snapshots.put(SYMBOLS[0], ticker("100", ts))
    snapshots.put(SYMBOLS[0], ticker("101", ts + 100))
    loop = asyncio.new_event_loop()
    try:
        assert feed_flusher.flush(loop) == 1
        assert feed_flusher.flush(loop) == 0  # nothing new: nothing written
    finally:
        loop.close()
    stored = redis_client.hgetall(contract_key(SYMBOLS[0]))
    assert stored[b"mark_price"] == b"101.0"
    assert stored[b"ts"] == str(ts + 100).encode()
    assert orjson.loads(redis_client.hget(chain_key("BTC"), SYMBOLS[0]) or b"null")["mark_price"] == 101.0
    assert not redis_client.exists(contract_key(SYMBOLS[1]))


def test_it_reports_the_lag_of_its_writes(flusher, redis_client: redis.Redis) -> None:
    feed_flusher, snapshots = flusher
    loop = asyncio.new_event_loop()
    try:
        snapshots.put(SYMBOLS[0], ticker("100", now_ms() - 2_000))  # two seconds old when it arrives
        feed_flusher.flush(loop)
        feed_flusher.lags.every = 0
        feed_flusher.flush(loop)
    finally:
        loop.close()
    status = read_feed_status(redis_client, "BTC")
    assert status is not None
    assert status.lag_p50_ms is not None
    assert 2_000 <= status.lag_p50_ms < 3_000
    assert redis_client.hget(feed_status_key("BTC"), "lag_p99_ms") == str(status.lag_p99_ms).encode()


def test_rows_a_failed_write_did_not_store_go_out_whole_with_the_next(flusher, redis_client: redis.Redis) -> None:
    feed_flusher, snapshots = flusher
    ts = now_ms()
    loop = asyncio.new_event_loop()
    try:
        snapshots.put(SYMBOLS[0], ticker("100", ts))
        feed_flusher.flush(loop)
        snapshots.put(SYMBOLS[0], Snapshot({"markPrice": "105"}, ts + 100, ts + 105))
        feed_flusher.client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)  # nobody listens there
        with pytest.raises(redis.ConnectionError):
            feed_flusher.flush(loop)
        feed_flusher.client = redis_client
        snapshots.put(SYMBOLS[1], ticker("7", ts + 200))
        assert feed_flusher.flush(loop) == 2
    finally:
        loop.close()
    assert redis_client.hget(contract_key(SYMBOLS[0]), "mark_price") == b"105.0"
    assert redis_client.hget(contract_key(SYMBOLS[0]), "ts") == str(ts + 100).encode()
    assert redis_client.hget(contract_key(SYMBOLS[1]), "mark_price") == b"7.0"


def test_it_counts_a_snapshot_whose_side_it_kept_in_the_feed_status(flusher, redis_client: redis.Redis) -> None:
    feed_flusher, snapshots = flusher
    ts = now_ms()
    loop = asyncio.new_event_loop()
    try:
        snapshots.put(SYMBOLS[0], ticker("100", ts))
        feed_flusher.flush(loop)
        half_a_bid = {"markPrice": "101", "markPriceIv": "0.5", "bidPrice": "11", "bidIv": "0.46"}  # no bidSize
        snapshots.put(SYMBOLS[0], Snapshot(half_a_bid, ts + 100, ts + 105))
        feed_flusher.flush(loop)
    finally:
        loop.close()
    row = orjson.loads(redis_client.hget(chain_key("BTC"), SYMBOLS[0]) or b"null")
    assert (row["bid_price"], row["bid_size"], row["bid_iv"], row["mark_price"]) == (10.0, 2.0, 0.45, 101.0)
    status = read_feed_status(redis_client, "BTC")
    assert status is not None
    assert status.rejected_frames == 1


def half_sides(row: dict[str, Any]) -> list[str]:
    """A stored row's sides that have a price without a size or a size without a price."""
    faults = []
    for side in ("bid", "ask"):
        price, size = row[f"{side}_price"], row[f"{side}_size"]
        if (price is None) != (size is None):
            faults.append(f"{row['symbol']} {side} price {price} size {size}")
    return faults


def unflagged_crossings(row: dict[str, Any]) -> list[str]:
    """A stored row whose ``crossed`` does not say whether its bid is above its ask."""
    bid, ask = row["bid_price"], row["ask_price"]
    crossed = bid is not None and ask is not None and bid > ask
    return (
        [] if row.get("crossed") is crossed else [f"{row['symbol']} bid {bid} ask {ask} crossed={row.get('crossed')}"]
    )


def test_no_row_it_stores_mixes_sides_while_frames_are_malformed(start_simulator, redis_client) -> None:
    # Empty sides are common here, so that a frame with half a side lands on an empty one often.
    simulator = start_simulator(
        assets=("SOL",), no_quote_probability=0.3, malformed_kinds=("missing_fields", "non_numeric")
    )
    written: list[ContractRow] = []
    feed = AssetFeed(
        asset="SOL",
        settings=FeedSettings(ws_url=simulator.ws_url, rest_url=simulator.rest_url, flush_interval=0.1),
        client=redis_client,
        channel_layer=None,
        worker="test",
        flush_observer=lambda rows, _written_ms: written.extend(rows),
    )
    thread = threading.Thread(target=feed.run, name="feed-SOL", daemon=True)
    thread.start()
    try:
        poll(lambda: feed.status.state == "live" and feed.status.subscribed > 0, timeout=15)
        simulator.set_malformed_rate(rate=0.2)
        poll(lambda: sum(simulator.state()["faults"]["malformed_injected"].values()) >= 1500, timeout=20)
        simulator.set_malformed_rate(rate=0.0)
        time.sleep(2)  # the crossed quote of the report came two seconds after the fault ended
    finally:
        feed.stop()
        thread.join(timeout=20)
        stored = [orjson.loads(raw) for raw in redis_client.hvals(chain_key("SOL"))]
        purge_asset(redis_client, asset="SOL")
    assert written
    rows = [*written, *stored]
    halves = [fault for row in rows for fault in half_sides(row)]
    crossings = [fault for row in rows for fault in unflagged_crossings(row)]
    assert not [*halves, *crossings], (
        f"of {len(rows)} rows: {len(halves)} half sides, e.g. {halves[:3]}; "
        f"{len(crossings)} crossed flags wrong, e.g. {crossings[:3]}"
    )
    assert feed.status.rejected_frames > 0
