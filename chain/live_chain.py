"""The live chain as a WebSocket connection reads it: whether an asset is served, the async Redis reads behind a
snapshot (shared by the connections that read one revision), and the views a connection filters rows by.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Literal, cast

import orjson
import redis.asyncio
from channels.db import database_sync_to_async

from assets.models import Asset
from chain.messages import ChainView, ExpiryInfo, FeedInfo, row_chunks
from ingest.events import ChainInstruments, ChainStatus, ChainUpdate
from ingest.keys import (
    ANALYTICS_ASSET_FIELD,
    ANALYTICS_TS_FIELD,
    analytics_expiry_field,
    analytics_key,
    chain_key,
    chain_revision_key,
    chosen_analytics_field,
    contracts_key,
    expiries_key,
    feed_status_key,
)
from ingest.normalize import ContractRow
from ingest.status import FeedStatus
from ingest.symbols import SettleCoin, SymbolError, parse_symbol
from optionsite.redis_client import async_redis_connection

AssetState = Literal["enabled", "disabled", "unknown"]
ChainEvent = ChainUpdate | ChainInstruments | ChainStatus


@database_sync_to_async
def asset_state(symbol: str) -> AssetState:
    enabled = Asset.objects.filter(symbol=symbol).values_list("enabled", flat=True).first()
    if enabled is None:
        return "unknown"
    return "enabled" if enabled else "disabled"


# Views whose rows one revision keeps written as JSON (a view is an expiry and a settle coin, or all): more
# than the listed expiries x coins only when clients ask for views that hold nothing.
MAX_VIEWS_PER_REVISION = 64


@dataclass(frozen=True)
class ChainRows:
    """One revision of an asset's chain: every row in chain order, and each view's rows as JSON, written once
    for every snapshot of that view until the revision moves. Shared: never changed."""

    rows: list[ContractRow]
    _view_json: dict[tuple[str | None, str | None], list[bytes]] = field(default_factory=dict, compare=False)

    def view_json(self, view: ChainView) -> list[bytes]:
        """The rows in ``view`` as JSON arrays of at most ``MAX_ROWS_PER_FRAME`` rows each (one ``[]`` if none)."""
        key = (view["expiry"], view["settle"])
        chunks = self._view_json.get(key)
        if chunks is None:
            chunks = [orjson.dumps(chunk) for chunk in row_chunks(rows_in_view(self.rows, view))]
            if len(self._view_json) < MAX_VIEWS_PER_REVISION:
                self._view_json[key] = chunks
        return chunks


@dataclass(frozen=True)
class LiveChain:
    """One asset's whole chain as a snapshot needs it: every row in chain order, every expiry, the feed.
    Shared between the connections that read it together: never changed."""

    rows: ChainRows
    expiries: list[ExpiryInfo]
    feed: FeedInfo


# The rows of the last chain read, per asset, with the revision they hold for: a snapshot that finds the
# revision unchanged reuses them, and their JSON, instead of reading, decoding and encoding the whole chain
# again (a snapshot is sent on connecting, on a view change and on every resync, many at once when a process
# falls behind; they were half of a web process's time under load, docs/benchmarks.md). Reads of one revision
# in flight together share one ``HVALS``.
_live_rows: dict[str, tuple[bytes, asyncio.Future[ChainRows]]] = {}


async def read_live_chain(*, asset: str) -> LiveChain:
    """The asset's rows, expiries and feed status: one round-trip, two when the chain moved since the last read."""
    client = async_redis_connection()
    pipe = client.pipeline(transaction=False)
    pipe.get(chain_revision_key(asset))
    pipe.zrange(expiries_key(asset), 0, -1, withscores=True)
    pipe.hgetall(feed_status_key(asset))
    revision, raw_expiries, raw_feed = await pipe.execute()
    kept = _live_rows.get(asset)
    if kept is not None and revision is not None and kept[0] == revision and not kept[1].cancelled():
        rows = await asyncio.shield(kept[1])
    else:
        # Read after ``revision``, the rows may be newer than it: never older.
        read = asyncio.ensure_future(_decoded_rows(client, asset))
        if revision is not None:
            _live_rows[asset] = (revision, read)
        try:
            rows = await asyncio.shield(read)
        except BaseException:
            if _live_rows.get(asset, (None, None))[1] is read:
                del _live_rows[asset]
            raise
    settles = ((row["expiry"], row["settle"]) for row in rows.rows)
    return LiveChain(
        rows=rows,
        expiries=expiry_infos(raw_expiries, settles),
        feed=feed_info(FeedStatus.from_redis(asset, raw_feed)),
    )


async def _decoded_rows(client: redis.asyncio.Redis, asset: str) -> ChainRows:
    raw_rows = await client.hvals(chain_key(asset))
    return ChainRows(sorted((orjson.loads(raw) for raw in raw_rows), key=_chain_order))


# When a process falls behind, all its connections resync on the same event: they share one read,
# instead of reading and decoding the whole chain once each just when the process is busiest. A read
# started while handling an event includes that event's rows (the ingest writes Redis before it sends
# the event), so any connection handling the same event may use it. They recognise the event by its
# ``id``, whether the channel layer hands them one object (channels-redis does) or copies.
_reads_by_event: dict[str, tuple[str, asyncio.Future[LiveChain]]] = {}


async def read_live_chain_after(event: ChainEvent, *, asset: str) -> LiveChain:
    """``read_live_chain``, shared by the connections handling the same ``event``."""
    shared = _reads_by_event.get(asset)
    if shared is not None and shared[0] == event["id"]:
        return await asyncio.shield(shared[1])
    read = asyncio.ensure_future(read_live_chain(asset=asset))
    _reads_by_event[asset] = (event["id"], read)
    return await asyncio.shield(read)


async def read_expiries(*, asset: str) -> list[ExpiryInfo]:
    """The asset's expiries, from its indexes (no quotes read)."""
    pipe = async_redis_connection().pipeline(transaction=False)
    pipe.zrange(expiries_key(asset), 0, -1, withscores=True)
    pipe.smembers(contracts_key(asset))
    raw_expiries, raw_symbols = await pipe.execute()
    settles = []
    for raw in raw_symbols:
        try:
            contract = parse_symbol(raw.decode())
        except SymbolError:
            continue
        settles.append((contract.expiry_code, contract.settle))
    return expiry_infos(raw_expiries, settles)


def expiry_infos(
    raw_expiries: list[tuple[bytes, float]], settles: Iterable[tuple[str, SettleCoin]]
) -> list[ExpiryInfo]:
    """Expiries in delivery order (the index's), each with the settle coins it has contracts in."""
    coins: dict[str, set[SettleCoin]] = {}
    for expiry, settle in settles:
        coins.setdefault(expiry, set()).add(settle)
    return [
        {
            "expiry": code.decode(),
            "delivery_ms": int(score),
            "settles": sorted(coins.get(code.decode(), ()), key=("USDT", "USDC").index),
        }
        for code, score in raw_expiries
    ]


def feed_info(status: FeedStatus | None) -> FeedInfo:
    if status is None:
        return {
            "state": None,
            "index_price": None,
            "last_message_ts": None,
            "data_ts": None,
            "lag_p50_ms": None,
            "lag_p99_ms": None,
        }
    return {
        "state": status.state,
        "index_price": status.index_price or None,
        "last_message_ts": status.last_message_ts or None,
        "data_ts": status.data_ts or None,
        "lag_p50_ms": status.lag_p50_ms,
        "lag_p99_ms": status.lag_p99_ms,
    }


def row_in_view(row: ContractRow, view: ChainView) -> bool:
    return (view["expiry"] is None or row["expiry"] == view["expiry"]) and (
        view["settle"] is None or row["settle"] == view["settle"]
    )


def rows_in_view(rows: list[ContractRow], view: ChainView) -> list[ContractRow]:
    if view["expiry"] is None and view["settle"] is None:
        return rows
    return [row for row in rows if row_in_view(row, view)]


def _chain_order(row: ContractRow) -> tuple[int, float, str, str]:
    return (row["delivery_ms"], row["strike"], row["type"], row["settle"])


@dataclass(frozen=True)
class StoredAnalytics:
    """The asset's latest analytics as the feed stored them (JSON), with the view's expiry's, if it has one."""

    asset_json: bytes
    expiry_json: bytes | None
    ts: int


def view_analytics_field(view: ChainView, stored: Container[str]) -> str | None:
    """The analytics field of the view's expiry (``ingest.keys.chosen_analytics_field``); none for every expiry."""
    expiry = view["expiry"]
    return None if expiry is None else chosen_analytics_field(expiry, view["settle"], stored=stored)


async def read_analytics(*, asset: str, view: ChainView) -> StoredAnalytics | None:
    """What the feed last published for the asset and the view's expiry; ``None`` before it first did."""
    expiry = view["expiry"]
    fields = [ANALYTICS_TS_FIELD, ANALYTICS_ASSET_FIELD]
    if expiry is not None:
        fields += [analytics_expiry_field(expiry, "USDT"), analytics_expiry_field(expiry, "USDC")]
    values = cast(list[bytes | None], await async_redis_connection().hmget(analytics_key(asset), fields))
    ts, asset_json = values[0], values[1]
    if ts is None or asset_json is None:
        return None
    by_field = {name: value for name, value in zip(fields[2:], values[2:], strict=True) if value is not None}
    field_name = view_analytics_field(view, by_field)
    return StoredAnalytics(
        asset_json=asset_json, expiry_json=by_field.get(field_name) if field_name else None, ts=int(ts)
    )
