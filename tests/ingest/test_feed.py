"""The feed against the simulator: real pybit, real sockets, real Redis, real channel layer."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from analytics.contracts import set_contract_measures
from ingest.feed import AssetFeed, FeedSettings, StopReason
from ingest.keys import (
    analytics_key,
    chain_group,
    chain_key,
    contract_key,
    contracts_key,
    expiries_key,
    feed_status_key,
)
from ingest.normalize import MEASURE_FIELDS, ContractRow
from ingest.simulator import RunningSimulator
from ingest.status import FeedStatus, read_feed_status
from ingest.store import purge_asset
from ingest.supervision import request_refresh
from tests.ingest.conftest import poll, wide_btc_symbols_file


class RunningFeed:
    def __init__(self, feed: AssetFeed, thread: threading.Thread, client: redis.Redis) -> None:
        self.feed = feed
        self.thread = thread
        self.client = client
        self.result: list[StopReason] = []

    def status(self) -> FeedStatus:
        return read_feed_status(self.client, self.feed.asset) or FeedStatus(asset=self.feed.asset)

    def chain(self) -> dict[str, dict[str, Any]]:
        raw = self.client.hgetall(chain_key(self.feed.asset))
        return {key.decode(): orjson.loads(value) for key, value in raw.items()}  # type: ignore[union-attr]

    def stop(self) -> StopReason:
        self.feed.stop()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive()
        return self.result[0]


@pytest.fixture
def start_feed(redis_client: redis.Redis) -> Iterator[Callable[..., RunningFeed]]:
    running: list[RunningFeed] = []

    def start(simulator: RunningSimulator, asset: str = "BTC", **settings: Any) -> RunningFeed:
        options: dict[str, Any] = {
            "flush_interval": 0.1,
            "silence_timeout": 2.0,
            "stale_after": 3.0,
            "backoff_initial": 0.1,
            "backoff_max": 1.0,
            "connect_timeout": 3.0,
            **settings,
        }
        is_enabled = options.pop("is_enabled", lambda: True)
        feed = AssetFeed(
            asset=asset,
            settings=FeedSettings(ws_url=simulator.ws_url, rest_url=simulator.rest_url, **options),
            client=redis_client,
            channel_layer=get_channel_layer(),
            worker="test",
            is_enabled=is_enabled,
        )
        thread = threading.Thread(target=lambda: handle.result.append(feed.run()), daemon=True)
        handle = RunningFeed(feed, thread, redis_client)
        thread.start()
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if handle.thread.is_alive():
            handle.stop()
        purge_asset(redis_client, asset=handle.feed.asset)


def live_with_every_topic(feed: RunningFeed, simulator: RunningSimulator, count: int) -> Callable[[], bool]:
    def check() -> bool:
        status = feed.status()
        return (
            status.state == "live"
            and status.subscribed == count
            and sum(simulator.topics_per_connection()) == count
            and simulator.connection_count() == status.connections_wanted
        )

    return check


def test_it_stores_every_contract_with_its_ticker_values(start_simulator, start_feed) -> None:
    simulator = start_simulator(assets=("BTC",))
    symbols = simulator.live_symbols("BTC")
    feed = start_feed(simulator, contract_hashes=True)
    poll(lambda: len([r for r in feed.chain().values() if r["ts"]]) == len(symbols), timeout=15)

    chain = feed.chain()
    assert sorted(chain) == sorted(symbols)
    assert {symbol.decode() for symbol in feed.client.smembers(contracts_key("BTC"))} == set(symbols)
    assert feed.client.zcard(expiries_key("BTC")) >= 5
    for row in chain.values():
        assert row["underlying_price"] > 0
        assert row["index_price"] > 0
        assert row["mark_price"] is not None
        assert 0 < row["mark_iv"] < 5
        if row["bid_price"] is not None and row["ask_price"] is not None:
            assert row["bid_price"] <= row["ask_price"]
        assert row["ts"] <= row["received_ts"]
    # USDT- and USDC-settled contracts with the same expiry, strike and type are both kept.
    usdc = [s for s in symbols if not s.endswith("-USDT")]
    assert usdc
    assert all(f"{s}-USDT" in chain for s in usdc[:20])
    # FEED_CONTRACT_HASHES: the same row, field by field, for scripts.
    poll(lambda: feed.client.hget(contract_key(usdc[0]), "ts") == str(feed.chain()[usdc[0]]["ts"]).encode(), timeout=5)
    one = feed.client.hgetall(contract_key(usdc[0]))
    assert one[b"settle"] == b"USDC"
    assert float(one[b"mark_iv"]) > 0


def test_it_writes_no_contract_hashes_unless_asked(start_simulator, start_feed, redis_client) -> None:
    simulator = start_simulator(assets=("SOL",))
    symbols = simulator.live_symbols("SOL")
    feed = start_feed(simulator, asset="SOL")
    poll(lambda: len([r for r in feed.chain().values() if r["ts"]]) == len(symbols), timeout=15)
    assert not any(redis_client.exists(contract_key(symbol)) for symbol in symbols)


def test_each_row_it_stores_carries_the_contracts_own_measures_of_that_row(start_simulator, start_feed) -> None:
    # Started now: the simulator lists by its own clock but stamps frames with the real one, so a contract
    # delivered by the tests' fixed start would be delivered as of its rows' ts too (no chance in the money).
    simulator = start_simulator(assets=("SOL",), start=datetime.now(UTC).replace(microsecond=0))
    symbols = simulator.live_symbols("SOL")
    feed = start_feed(simulator, asset="SOL", contract_hashes=True)
    poll(lambda: len([r for r in feed.chain().values() if r["ts"]]) == len(symbols), timeout=15)

    chain = feed.chain()
    for row in chain.values():
        assert row["moneyness"] == row["strike"] / row["underlying_price"]
        assert row["log_moneyness"] == math.log(row["moneyness"])
        assert 0.0 <= row["itm_probability"] <= 1.0
        book = row["bid_price"] is not None and row["ask_price"] is not None
        assert row["spread"] == (row["ask_price"] - row["bid_price"] if book else None)
        assert row["iv_spread"] == (row["ask_iv"] - row["bid_iv"] if book else None)
        # Worked out from the row as stored: its own forward, IV and time.
        measured = dict(row)
        set_contract_measures(measured)
        assert measured == row
    assert any(row["spread"] is not None for row in chain.values())
    # The contract hashes copy them, as text like every number.
    symbol = symbols[0]
    poll(lambda: feed.client.hget(contract_key(symbol), "ts") == str(feed.chain()[symbol]["ts"]).encode(), timeout=5)
    stored, row = feed.client.hgetall(contract_key(symbol)), feed.chain()[symbol]
    for name in MEASURE_FIELDS:
        assert stored[name.encode()] == ("" if row[name] is None else str(row[name])).encode(), name


def test_its_values_match_the_exchanges_rest_tickers(start_simulator, start_feed, pybit_http) -> None:
    simulator = start_simulator(assets=("BTC",), reprice_hz=0.2)
    feed = start_feed(simulator)
    symbol = simulator.live_symbols("BTC")[10]
    poll(lambda: feed.chain().get(symbol, {}).get("ts"), timeout=10)
    rest = pybit_http(simulator.rest_url).get_tickers(category="option", symbol=symbol)["result"]["list"][0]

    def matches() -> bool:
        row = feed.chain()[symbol]
        return row["mark_iv"] == float(rest["markIv"]) and row["delta"] == float(rest["delta"])

    # Within one re-pricing period (5 s) the stream and REST show the same mark IV and delta.
    poll(matches, timeout=6, message="stream and REST values agree")


def test_it_spreads_topics_over_connections_within_the_per_connection_limit(start_simulator, start_feed) -> None:
    simulator = start_simulator(assets=("BTC",))
    count = len(simulator.live_symbols("BTC"))
    feed = start_feed(simulator, topics_per_connection=300, topics_per_request=120)
    poll(live_with_every_topic(feed, simulator, count), timeout=15)
    assert simulator.connection_count() == -(-count // 300)
    assert max(simulator.topics_per_connection()) <= 300


def test_it_keeps_more_than_2000_contracts_across_connections(start_simulator, start_feed, tmp_path) -> None:
    simulator = start_simulator(assets=("BTC",), symbols_file=wide_btc_symbols_file(tmp_path))
    count = len(simulator.live_symbols("BTC"))
    assert count > 2000
    feed = start_feed(simulator)
    poll(live_with_every_topic(feed, simulator, count), timeout=30)
    assert simulator.connection_count() == 2
    assert sorted(simulator.topics_per_connection()) == [count - 2000, 2000]


@pytest.mark.parametrize(
    ("fault", "arguments"),
    [
        ("drop_connections", {}),
        ("close_connections", {"code": 1001, "reason": "going away"}),
        ("stall", {"seconds": 4}),
    ],
)
def test_it_recovers_every_topic_after_a_fault(start_simulator, start_feed, fault, arguments) -> None:
    simulator = start_simulator(assets=("SOL",))
    count = len(simulator.live_symbols("SOL"))
    feed = start_feed(simulator, asset="SOL", topics_per_connection=200)
    poll(live_with_every_topic(feed, simulator, count), timeout=15)
    reconnects = feed.status().reconnects

    getattr(simulator, fault)(**arguments)

    poll(lambda: feed.status().reconnects > reconnects, timeout=10, message="the feed noticed")
    poll(live_with_every_topic(feed, simulator, count), timeout=15, message="every topic restored")
    # No duplicate sockets: exactly the connections the feed wants, each with its share.
    assert simulator.connection_count() == feed.status().connections_wanted == -(-count // 200)


def test_it_goes_stale_when_one_socket_stops_pushing_although_the_others_and_its_pings_carry_on(
    start_simulator, start_feed
) -> None:
    """Before, freshness followed the last message of any socket: one silent socket of two kept "live"."""
    simulator = start_simulator(assets=("SOL",))
    count = len(simulator.live_symbols("SOL"))
    # The watchdog's silence limit is far off: freshness alone must notice.
    feed = start_feed(simulator, asset="SOL", topics_per_connection=-(-count // 2), stale_after=1.0, silence_timeout=30)
    poll(live_with_every_topic(feed, simulator, count), timeout=15)
    assert feed.status().connections == 2
    assert feed.status().is_fresh(stale_after=1.0)

    simulator.stall_pushes(seconds=5, connections=1)
    stalled_at = time.monotonic()
    poll(lambda: feed.status().state == "stale", timeout=4, message="stale while one socket is silent")
    assert time.monotonic() - stalled_at < 3
    status = feed.status()
    assert status.last_message_age() < 0.5, "tickers still arrive on the other socket"
    reason = status.stale_reason(stale_after=1.0)
    assert reason is not None
    assert reason.startswith("newest data")
    poll(lambda: feed.status().is_fresh(stale_after=1.0), timeout=8, message="fresh again after the stall")
    assert feed.status().reconnects == 0


def test_a_slow_instrument_refresh_does_not_hold_up_rebuilding_a_dead_socket(
    start_simulator, start_feed, redis_client
) -> None:
    simulator = start_simulator(assets=("SOL",))
    count = len(simulator.live_symbols("SOL"))
    feed = start_feed(simulator, asset="SOL")
    poll(live_with_every_topic(feed, simulator, count), timeout=15)
    reconnects = feed.status().reconnects

    simulator.set_rest_delay(seconds=8)
    request_refresh(client=redis_client, assets=["SOL"])
    time.sleep(0.5)  # the refresh is now waiting for its answer
    simulator.drop_connections()
    dropped_at = time.monotonic()
    poll(lambda: feed.status().reconnects > reconnects, timeout=5, message="the drop noticed")
    poll(live_with_every_topic(feed, simulator, count), timeout=6, message="every topic back before REST answers")
    assert time.monotonic() - dropped_at < 6
    simulator.set_rest_delay(seconds=0)


def test_it_waits_out_refused_connections_with_backoff(start_simulator, start_feed) -> None:
    simulator = start_simulator(assets=("SOL",))
    count = len(simulator.live_symbols("SOL"))
    feed = start_feed(simulator, asset="SOL")
    poll(live_with_every_topic(feed, simulator, count), timeout=15)

    simulator.refuse_connections(seconds=3)
    simulator.drop_connections()
    poll(lambda: feed.status().state != "live", timeout=8)
    poll(live_with_every_topic(feed, simulator, count), timeout=20, message="back after the refusal")
    # Backoff: a handful of attempts in 3 s, not pybit's busy loop of ~100 per second.
    assert feed.status().reconnects < 15
    assert simulator.connection_count() == feed.status().connections_wanted


def test_it_rebuilds_a_connection_whose_pongs_stop(start_simulator, start_feed) -> None:
    simulator = start_simulator(assets=("SOL",))
    count = len(simulator.live_symbols("SOL"))
    feed = start_feed(simulator, asset="SOL", ping_interval=2, ping_timeout=1)
    poll(live_with_every_topic(feed, simulator, count), timeout=15)
    simulator.withhold_pongs(enabled=True, kind="control")
    poll(lambda: feed.status().reconnects > 0, timeout=10, message="ping timeout noticed")
    simulator.withhold_pongs(enabled=False)
    poll(live_with_every_topic(feed, simulator, count), timeout=15)


def test_it_counts_bad_frames_and_keeps_good_values(start_simulator, start_feed) -> None:
    simulator = start_simulator(assets=("SOL",))
    count = len(simulator.live_symbols("SOL"))
    feed = start_feed(simulator, asset="SOL")
    poll(live_with_every_topic(feed, simulator, count), timeout=15)
    simulator.set_malformed_rate(rate=0.05)
    poll(lambda: feed.status().rejected_frames > 50, timeout=10)
    simulator.set_malformed_rate(rate=0.0)

    status = feed.status()
    assert status.state == "live"
    assert status.reconnects == 0
    for row in feed.chain().values():
        for field in ("mark_price", "mark_iv", "delta", "underlying_price"):
            assert isinstance(row[field], float), (row["symbol"], field, row[field])


def test_it_lists_and_delivers_at_08_00_utc(start_simulator, start_feed, redis_client) -> None:
    simulator = start_simulator(assets=("SOL",))
    before = set(simulator.live_symbols("SOL"))
    feed = start_feed(simulator, asset="SOL")
    poll(live_with_every_topic(feed, simulator, len(before)), timeout=15)

    simulator.advance_to_next_delivery()
    after = set(simulator.live_symbols("SOL"))
    delivered, listed = before - after, after - before
    assert delivered
    assert listed
    request_refresh(client=redis_client, assets=["SOL"])

    poll(lambda: set(feed.chain()) == after, timeout=10, message="chain follows the new listing")
    poll(live_with_every_topic(feed, simulator, len(after)), timeout=10)
    poll(lambda: all(feed.chain()[symbol]["ts"] for symbol in listed), timeout=10)
    assert not any(redis_client.exists(contract_key(symbol)) for symbol in delivered)
    assert sum(simulator.topics_per_connection()) == len(after)


def test_it_stops_cleanly_and_says_so(start_simulator, start_feed) -> None:
    simulator = start_simulator(assets=("SOL",))
    feed = start_feed(simulator, asset="SOL")
    poll(lambda: feed.status().state == "live", timeout=15)
    assert feed.stop() is StopReason.REQUESTED
    assert feed.status().state == "stopped"
    poll(lambda: simulator.connection_count() == 0, timeout=5)
    assert feed.chain()  # data stays, marked stopped


def test_it_removes_its_data_when_the_asset_is_disabled(start_simulator, start_feed, redis_client) -> None:
    from assets.events import publish_assets_changed

    simulator = start_simulator(assets=("SOL",))
    enabled = threading.Event()
    enabled.set()
    feed = start_feed(simulator, asset="SOL", is_enabled=enabled.is_set)
    poll(lambda: feed.status().state == "live", timeout=15)

    enabled.clear()
    publish_assets_changed(action="updated", symbols=["SOL"])
    feed.thread.join(timeout=5)
    assert feed.result == [StopReason.DISABLED]
    assert not redis_client.exists(chain_key("SOL"), contracts_key("SOL"), feed_status_key("SOL"), analytics_key("SOL"))
    poll(lambda: simulator.connection_count() == 0, timeout=5)


def group_events(start_feed: Callable[..., Any], simulator: Any, *, kind: str, wanted: int) -> list[dict[str, Any]]:
    """The first ``wanted`` events of ``kind`` a SOL feed, started here, sends to SOL's group."""
    layer = get_channel_layer()

    async def receive() -> list[dict[str, Any]]:
        channel = await layer.new_channel()
        await layer.group_add(chain_group("SOL"), channel)
        start_feed(simulator, asset="SOL")
        received: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(15):
                while len(received) < wanted:
                    message = await layer.receive(channel)
                    if message["type"] == kind:
                        received.append(message)
        finally:
            await layer.group_discard(chain_group("SOL"), channel)
        return received

    return async_to_sync(receive)()


def test_it_publishes_its_assets_analytics_once_a_second_to_redis_and_the_group(
    start_simulator, start_feed, redis_client
) -> None:
    simulator = start_simulator(assets=("SOL",))
    first, second, third = group_events(start_feed, simulator, kind="chain.analytics", wanted=3)
    assert 0.9 <= (third["ts"] - first["ts"]) / 2000 <= 2.0, "about once a second while the market moves"
    stored = redis_client.hgetall(analytics_key("SOL"))
    latest = orjson.loads(stored[b"asset"])
    assert latest["asset"] == "SOL"
    assert int(stored[b"ts"]) == latest["now_ms"] >= third["ts"]
    expiries = {(summary["expiry"], summary["settle"]) for summary in latest["expiries"]}
    assert {f"{expiry}/{settle}".encode() for expiry, settle in expiries} == set(stored) - {b"asset", b"ts"}
    assert any(summary["atm_iv"] is not None for summary in latest["expiries"]), latest["expiries"][0]["missing"]
    assert orjson.loads(second["analytics"])["asset"] == "SOL"


def test_it_sends_batched_updates_to_the_assets_group(start_simulator, start_feed) -> None:
    simulator = start_simulator(assets=("SOL",))
    updates = group_events(start_feed, simulator, kind="chain.update", wanted=3)
    assert all(update["asset"] == "SOL" and update["rows"] for update in updates)
    # One message per flush carrying many contracts, not one per contract.
    assert max(len(update["rows"]) for update in updates) > 20
    # Each row as JSON, tagged with the expiry and settle coin a view selects it by.
    for expiry, settle, row_json in updates[-1]["rows"]:
        row = orjson.loads(row_json)
        assert (row["asset"], row["expiry"], row["settle"]) == ("SOL", expiry, settle)
        assert set(row) == set(ContractRow.__annotations__)
