"""The ingest's writes to Redis, against the real thing."""

from collections.abc import Iterator

import orjson
import pytest
import redis

from ingest.keys import (
    chain_key,
    chain_revision_key,
    contract_key,
    contracts_key,
    expiries_key,
    strikes_key,
    tracked_assets_key,
)
from ingest.normalize import apply_ticker
from ingest.store import CONTRACT_TTL_SECONDS, purge_asset, sync_instruments, write_rows
from ingest.symbols import parse_symbol

SYMBOLS = ["BTC-26DEC25-65000-C-USDT", "BTC-26DEC25-65000-C", "BTC-26DEC25-70000-P-USDT", "BTC-2JAN26-0.5-C-USDT"]


@pytest.fixture
def asset(redis_client: redis.Redis) -> Iterator[str]:
    yield "BTC"
    purge_asset(redis_client, asset="BTC")


def test_it_indexes_listed_contracts_and_drops_delivered_ones(redis_client: redis.Redis, asset: str) -> None:
    first = sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(s) for s in SYMBOLS])
    assert sorted(row["symbol"] for row in first.listed) == sorted(SYMBOLS)
    assert redis_client.zrange(expiries_key(asset), 0, -1) == [b"26DEC25", b"2JAN26"]
    assert redis_client.zrange(strikes_key(asset, "26DEC25"), 0, -1) == [b"65000", b"70000"]
    assert redis_client.zrange(strikes_key(asset, "2JAN26"), 0, -1) == [b"0.5"]
    row = orjson.loads(redis_client.hget(chain_key(asset), "BTC-26DEC25-65000-C") or b"null")
    assert row["settle"] == "USDC"
    assert row["mark_price"] is None

    second = sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(s) for s in SYMBOLS[:3]])
    assert second.listed == []
    assert second.delivered == ["BTC-2JAN26-0.5-C-USDT"]
    assert redis_client.zrange(expiries_key(asset), 0, -1) == [b"26DEC25"]
    assert not redis_client.exists(strikes_key(asset, "2JAN26"))
    assert redis_client.scard(contracts_key(asset)) == 3
    assert redis_client.sismember(tracked_assets_key(), asset)


def test_it_writes_every_field_first_then_only_what_changed(redis_client: redis.Redis, asset: str) -> None:
    [listed] = sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(SYMBOLS[0])]).listed
    first = apply_ticker(listed, {"markPrice": "100", "markPriceIv": "0.5", "bidPrice": "0"}, ts=1, received_ts=2)
    pipe = redis_client.pipeline()
    write_rows(pipe, asset=asset, rows=[first], previous={first["symbol"]: listed}, contract_hashes=True)
    pipe.execute()
    stored = redis_client.hgetall(contract_key(first["symbol"]))
    assert stored[b"mark_price"] == b"100.0"
    assert stored[b"bid_price"] == b""
    assert stored[b"strike"] == b"65000.0"
    assert 0 < redis_client.ttl(contract_key(first["symbol"])) <= CONTRACT_TTL_SECONDS

    # Someone else's field survives a later write that does not change it: only diffs are sent.
    redis_client.hset(contract_key(first["symbol"]), "strike", "tampered")
    second = apply_ticker(first, {"markPrice": "101"}, ts=2, received_ts=3)
    pipe = redis_client.pipeline()
    write_rows(pipe, asset=asset, rows=[second], previous={first["symbol"]: first}, contract_hashes=True)
    pipe.execute()
    stored = redis_client.hgetall(contract_key(first["symbol"]))
    assert stored[b"mark_price"] == b"101.0"
    assert stored[b"mark_iv"] == b"0.5"
    assert stored[b"ts"] == b"2"
    assert stored[b"strike"] == b"tampered"
    assert orjson.loads(redis_client.hget(chain_key(asset), first["symbol"]) or b"null")["mark_price"] == 101.0


def test_it_writes_the_crossed_flag_as_true_in_the_chain_and_1_in_the_contract_hash(
    redis_client: redis.Redis, asset: str
) -> None:
    [listed] = sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(SYMBOLS[0])]).listed
    quotes = {"bidPrice": "392.6", "bidSize": "1", "bidIv": "0.4", "askPrice": "392.3", "askSize": "1", "askIv": "0.41"}
    crossed = apply_ticker(listed, quotes, ts=1, received_ts=2)
    uncrossed = apply_ticker(crossed, {**quotes, "bidPrice": "392.1"}, ts=2, received_ts=3)
    symbol = listed["symbol"]
    for row, before, flag, text in ((crossed, listed, True, b"1"), (uncrossed, crossed, False, b"0")):
        pipe = redis_client.pipeline()
        write_rows(pipe, asset=asset, rows=[row], previous={symbol: before}, contract_hashes=True)
        pipe.execute()
        assert orjson.loads(redis_client.hget(chain_key(asset), symbol) or b"null")["crossed"] is flag
        assert redis_client.hget(contract_key(symbol), "crossed") == text


def test_without_contract_hashes_the_chain_entry_is_the_contracts_only_record(
    redis_client: redis.Redis, asset: str
) -> None:
    [listed] = sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(SYMBOLS[0])]).listed
    row = apply_ticker(listed, {"markPrice": "100", "markPriceIv": "0.5"}, ts=1, received_ts=2)
    pipe = redis_client.pipeline()
    assert write_rows(pipe, asset=asset, rows=[row], previous={row["symbol"]: listed}) == 1
    pipe.execute()
    assert not redis_client.exists(contract_key(row["symbol"]))
    assert orjson.loads(redis_client.hget(chain_key(asset), row["symbol"]) or b"null") == row


def test_purge_removes_every_key_of_the_asset(redis_client: redis.Redis, asset: str) -> None:
    change = sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(s) for s in SYMBOLS])
    pipe = redis_client.pipeline()
    write_rows(
        pipe,
        asset=asset,
        rows=[apply_ticker(row, {"markPrice": "1"}, ts=1, received_ts=1) for row in change.listed],
        contract_hashes=True,
    )
    pipe.execute()
    purge_asset(redis_client, asset=asset)
    keys = [chain_key(asset), chain_revision_key(asset), contracts_key(asset), expiries_key(asset)]
    keys += [strikes_key(asset, "26DEC25")]
    keys += [contract_key(symbol) for symbol in SYMBOLS]
    assert redis_client.exists(*keys) == 0
    assert not redis_client.sismember(tracked_assets_key(), asset)


def test_every_change_to_the_chain_gives_it_a_new_revision(redis_client: redis.Redis, asset: str) -> None:
    revisions: list[object] = []

    def revision() -> object:
        revisions.append(redis_client.get(chain_revision_key(asset)))
        return revisions[-1]

    listed = sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(s) for s in SYMBOLS]).listed
    revision()
    pipe = redis_client.pipeline()
    write_rows(pipe, asset=asset, rows=[apply_ticker(listed[0], {"markPrice": "1"}, ts=1, received_ts=1)])
    pipe.execute()
    revision()
    sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(s) for s in SYMBOLS[:3]])  # one delivered
    revision()
    assert None not in revisions
    assert len(set(revisions)) == 3

    sync_instruments(redis_client, asset=asset, contracts=[parse_symbol(s) for s in SYMBOLS[:3]])  # nothing changed
    assert revision() == revisions[-2]
