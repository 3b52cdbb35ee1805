"""Reads cost a constant number of Redis round-trips, whatever the number of contracts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
import redis.connection
from django.test import Client

from chain.messages import ChainView
from ingest.normalize import ContractRow

pytestmark = pytest.mark.django_db


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], int]:
    """``round_trips(action)``: how many times ``action`` wrote to a Redis socket (a pipeline is one).

    A spy, not a stand-in: every command still goes to the real Redis.
    """
    sent = 0
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        nonlocal sent
        sent += 1
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)

    def count(action: Callable[[], Any]) -> int:
        nonlocal sent
        action()  # once to warm connections and caches
        sent = 0
        action()
        return sent

    return count


@pytest.mark.parametrize(
    "path",
    [
        "/api/options/{asset}/",
        "/api/options/{asset}/?atm=2&ordering=-open_interest",
        "/api/chain/{asset}/",
        "/api/expiries/{asset}/",
        "/api/summary/{asset}/",
        "/api/stats/",
        "/api/health/",
    ],
)
def test_it_reads_a_chain_of_778_contracts_in_as_many_round_trips_as_one_of_24(
    client: Client, fill, round_trips, path: str
) -> None:
    fill("BTC")
    fill("SOL", limit_expiries=1)
    small = round_trips(lambda: client.get(path.format(asset="SOL")))
    large = round_trips(lambda: client.get(path.format(asset="BTC")))
    assert large == small
    # The asset check, the read, and the anonymous throttle's counter.
    assert large <= 3


def test_it_reads_the_whole_chain_in_one_pipeline(fill, round_trips) -> None:
    from chain.readers import read_chain
    from optionsite.redis_client import redis_connection

    fill("BTC")
    snapshot = None

    def read() -> None:
        nonlocal snapshot
        snapshot = read_chain(redis_connection(), asset="BTC")

    assert round_trips(read) == 1
    assert snapshot is not None
    assert len(snapshot.chain.rows) == 778
    assert len(snapshot.expiries) == 11
    assert snapshot.feed is not None


def test_it_reads_the_chain_again_only_when_its_revision_moved(
    fill, redis_client, round_trips, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.commands.core import HashCommands

    from chain.readers import read_chain
    from ingest.store import write_rows
    from optionsite.redis_client import redis_connection

    rows = fill("SOL", limit_expiries=1)
    marks = iter(range(1, 100))
    seen: list[float] = []
    chain_reads = 0
    hvals = HashCommands.hvals

    def counted_hvals(self: Any, name: str) -> Any:
        nonlocal chain_reads
        chain_reads += 1
        return hvals(self, name)

    monkeypatch.setattr(HashCommands, "hvals", counted_hvals)

    def read() -> None:
        snapshot = read_chain(redis_connection(), asset="SOL")
        seen.append({row["symbol"]: row for row in snapshot.chain.rows}[rows[0]["symbol"]]["mark_price"])

    def write_then_read() -> None:
        pipe = redis_client.pipeline()
        write_rows(pipe, asset="SOL", rows=[cast(ContractRow, {**rows[0], "mark_price": float(next(marks))})])
        pipe.execute()
        read()

    # Unchanged: one pipeline (revision, expiries, feed status), no HVALS.
    read()
    chain_reads = 0
    assert round_trips(read) == 1
    assert chain_reads == 0
    # Changed: the write, then the pipeline and the HVALS; every read sees the write before it.
    assert round_trips(write_then_read) == 3
    assert chain_reads == 2
    assert seen[-2:] == [1.0, 2.0]


def test_it_decodes_a_row_again_only_when_it_changed(fill, redis_client) -> None:
    from chain.readers import read_chain
    from ingest.store import write_rows
    from optionsite.redis_client import redis_connection

    rows = fill("SOL", limit_expiries=1)
    first = {row["symbol"]: row for row in read_chain(redis_connection(), asset="SOL").chain.rows}
    changed = cast(ContractRow, {**rows[0], "mark_price": 123.4, "ts": rows[0]["ts"] + 1000})
    pipe = redis_client.pipeline()
    write_rows(pipe, asset="SOL", rows=[changed])
    pipe.execute()
    second = {row["symbol"]: row for row in read_chain(redis_connection(), asset="SOL").chain.rows}

    assert second[changed["symbol"]]["mark_price"] == 123.4
    assert second[changed["symbol"]] is not first[changed["symbol"]]
    unchanged = rows[1]["symbol"]
    assert second[unchanged] is first[unchanged]


def test_it_reuses_the_work_done_on_a_chain_that_did_not_change(fill, redis_client) -> None:
    from chain.filters import RowFilter
    from chain.queries import options_page
    from chain.readers import read_chain
    from ingest.store import write_rows
    from optionsite.redis_client import redis_connection

    rows = fill("SOL", limit_expiries=1)
    calls = RowFilter(type="call")
    first = options_page(asset="SOL", row_filter=calls)[0]["data"]
    assert options_page(asset="SOL", row_filter=calls)[0]["data"] is first
    unchanged = read_chain(redis_connection(), asset="SOL").chain

    pipe = redis_client.pipeline()
    write_rows(pipe, asset="SOL", rows=[cast(ContractRow, {**rows[0], "mark_price": 1.5})])
    pipe.execute()
    assert read_chain(redis_connection(), asset="SOL").chain is not unchanged
    assert options_page(asset="SOL", row_filter=calls)[0]["data"] is not first


async def test_snapshots_of_an_unchanged_chain_share_its_rows_and_never_miss_a_move(fill, redis_client) -> None:
    from chain.live_chain import read_live_chain
    from ingest.store import write_rows

    rows = fill("SOL", limit_expiries=1)
    first, second = await asyncio.gather(read_live_chain(asset="SOL"), read_live_chain(asset="SOL"))
    assert first.rows is second.rows, "read together: one HVALS"
    assert (await read_live_chain(asset="SOL")).rows is first.rows, "unchanged: not read again"

    changed = cast(ContractRow, {**rows[0], "mark_price": 2.75})
    pipe = redis_client.pipeline()
    write_rows(pipe, asset="SOL", rows=[changed])
    pipe.execute()
    after = await read_live_chain(asset="SOL")
    assert {row["symbol"]: row for row in after.rows.rows}[changed["symbol"]]["mark_price"] == 2.75


async def test_snapshots_of_one_view_share_its_json_until_the_chain_moves(fill, redis_client) -> None:
    from chain.live_chain import read_live_chain, rows_in_view
    from chain.messages import MAX_ROWS_PER_FRAME
    from ingest.store import write_rows

    rows = fill("BTC")
    expiry = rows[0]["expiry"]
    one: ChainView = {"expiry": expiry, "settle": rows[0]["settle"]}
    everything: ChainView = {"expiry": None, "settle": None}
    chain = await read_live_chain(asset="BTC")
    written = chain.rows.view_json(one)
    in_view = [row["symbol"] for row in rows_in_view(chain.rows.rows, one)]
    assert in_view, "the view holds contracts"
    assert [row["symbol"] for chunk in written for row in orjson.loads(chunk)] == in_view
    again = (await read_live_chain(asset="BTC")).rows.view_json(one)
    assert again is written, "one JSON per revision and view"
    whole = chain.rows.view_json(everything)
    assert len(orjson.loads(whole[0])) == min(len(rows), MAX_ROWS_PER_FRAME)
    assert sum(len(orjson.loads(chunk)) for chunk in whole) == len(rows)
    assert chain.rows.view_json({"expiry": "1JAN20", "settle": None}) == [b"[]"]

    changed = cast(ContractRow, {**rows[0], "mark_price": 2.75})
    pipe = redis_client.pipeline()
    write_rows(pipe, asset="BTC", rows=[changed])
    pipe.execute()
    moved = (await read_live_chain(asset="BTC")).rows.view_json(one)
    assert {row["symbol"]: row for chunk in moved for row in orjson.loads(chunk)}[changed["symbol"]][
        "mark_price"
    ] == 2.75
