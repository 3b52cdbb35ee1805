"""Reads of what the ingest keeps in Redis (layout in ``ingest.keys``).

Each function sends one pipeline, i.e. one round-trip, whatever the number of contracts:
the whole chain is one ``HVALS``, never a ``KEYS`` scan or a read per contract. The chain
itself is read again only when its revision moved (``read_chain``: a second round-trip).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson
import redis

from chain.rows import Row, RowView
from ingest.keys import (
    ANALYTICS_TS_FIELD,
    analytics_key,
    chain_key,
    chain_revision_key,
    contracts_key,
    expiries_key,
    feed_status_key,
    strikes_key,
)
from ingest.status import FeedStatus
from optionsite.clock import now_ms

# Most requests find the chain as the previous one left it (the ingest writes every 250 ms),
# so no work done on a chain is done twice: each process keeps, per asset, the last chain
# it decoded, with the revision it was read at (``ingest.keys.chain_revision_key``). While
# the revision stays, the chain is not even read again (~700 KiB for BTC's). A row whose
# stored JSON did not change is not decoded again, and an unchanged chain is the same
# ``DecodedChain`` object, with the filtered and ordered views already computed on it.
# Rows and views are shared between requests: never mutated.
MAX_VIEWS_PER_CHAIN = 32


@dataclass(eq=False)
class DecodedChain:
    stored: list[bytes]
    rows: list[Row]
    stored_json: dict[str, bytes]
    # The chain's revision when it was read, or at most that new; None: no revision in Redis.
    revision: bytes | None = None
    # Filtered and ordered views of the rows, by the filter that made them (``chain.queries``).
    views: dict[Hashable, RowView] = field(default_factory=dict)

    def view(self, key: Hashable, make: Callable[[list[Row]], list[Row]]) -> RowView:
        """The rows as ``make(rows)`` orders them, computed once per chain and ``key``."""
        view = self.views.get(key)
        if view is None:
            view = RowView(make(self.rows), stored_json=self.stored_json)
            if len(self.views) < MAX_VIEWS_PER_CHAIN:
                self.views[key] = view
        return view


_decoded: dict[str, DecodedChain] = {}


@dataclass
class ChainSnapshot:
    """An asset's rows, expiries and feed status, read together."""

    asset: str
    chain: DecodedChain
    expiries: list[tuple[str, int]]
    feed: FeedStatus | None
    now_ms: int


@dataclass
class ListedContracts:
    """An asset's expiries and contract symbols, without the quotes."""

    asset: str
    expiries: list[tuple[str, int]]
    symbols: list[str]
    feed: FeedStatus | None
    now_ms: int


@dataclass
class ListedStrikes:
    asset: str
    expiry: str
    delivery_ms: int | None
    strikes: list[float]
    feed: FeedStatus | None
    now_ms: int


@dataclass
class AssetCounts:
    asset: str
    contracts: int
    feed: FeedStatus | None


@dataclass
class RedisStats:
    used_memory: int
    used_memory_human: str
    maxmemory: int
    uptime_seconds: int
    version: str
    assets: list[AssetCounts] = field(default_factory=list)


def read_chain(client: redis.Redis, *, asset: str) -> ChainSnapshot:
    """The chain, its expiries and its feed status: one round-trip, two when the chain changed."""
    pipe = client.pipeline(transaction=False)
    pipe.get(chain_revision_key(asset))
    pipe.zrange(expiries_key(asset), 0, -1, withscores=True)
    pipe.hgetall(feed_status_key(asset))
    revision, raw_expiries, raw_feed = pipe.execute()
    chain = _decoded.get(asset)
    if chain is None or revision is None or chain.revision != revision:
        # Written after ``revision`` was read, the rows may be newer than it: never older.
        stored = cast(list[bytes], client.hvals(chain_key(asset)))
        chain = _decoded_chain(asset, stored, revision=revision)
    return ChainSnapshot(
        asset=asset,
        chain=chain,
        expiries=_expiries(raw_expiries),
        feed=FeedStatus.from_redis(asset, raw_feed),
        now_ms=now_ms(),
    )


def read_listed_contracts(client: redis.Redis, *, asset: str) -> ListedContracts:
    pipe = client.pipeline(transaction=False)
    pipe.zrange(expiries_key(asset), 0, -1, withscores=True)
    pipe.smembers(contracts_key(asset))
    pipe.hgetall(feed_status_key(asset))
    raw_expiries, raw_symbols, raw_feed = pipe.execute()
    return ListedContracts(
        asset=asset,
        expiries=_expiries(raw_expiries),
        symbols=sorted(member.decode() for member in raw_symbols),
        feed=FeedStatus.from_redis(asset, raw_feed),
        now_ms=now_ms(),
    )


def read_strikes(client: redis.Redis, *, asset: str, expiry: str) -> ListedStrikes:
    pipe = client.pipeline(transaction=False)
    pipe.zscore(expiries_key(asset), expiry)
    pipe.zrange(strikes_key(asset, expiry), 0, -1, withscores=True)
    pipe.hgetall(feed_status_key(asset))
    delivery, raw_strikes, raw_feed = pipe.execute()
    return ListedStrikes(
        asset=asset,
        expiry=expiry,
        delivery_ms=None if delivery is None else int(delivery),
        strikes=[float(score) for _, score in raw_strikes],
        feed=FeedStatus.from_redis(asset, raw_feed),
        now_ms=now_ms(),
    )


@dataclass(frozen=True)
class StoredAnalyticsFields:
    """What the feed last stored of an asset's analytics (``ingest.keys.analytics_key``), as JSON, by field."""

    asset: str
    fields: dict[str, bytes]
    ts: int | None
    delivery_ms: int | None  # of the expiry asked about, when one was; None when it is not listed
    feed: FeedStatus | None
    now_ms: int


def read_analytics(
    client: redis.Redis, *, asset: str, fields: Sequence[str], expiry: str | None = None
) -> StoredAnalyticsFields:
    """The named fields of the asset's stored analytics (missing ones left out), the expiry's delivery, the feed."""
    pipe = client.pipeline(transaction=False)
    pipe.hmget(analytics_key(asset), [ANALYTICS_TS_FIELD, *fields])
    pipe.zscore(expiries_key(asset), expiry or "")
    pipe.hgetall(feed_status_key(asset))
    (ts, *values), delivery, raw_feed = pipe.execute()
    return StoredAnalyticsFields(
        asset=asset,
        fields={name: value for name, value in zip(fields, values, strict=True) if value is not None},
        ts=None if ts is None else int(ts),
        delivery_ms=None if delivery is None else int(delivery),
        feed=FeedStatus.from_redis(asset, raw_feed),
        now_ms=now_ms(),
    )


def read_feed_statuses(client: redis.Redis, *, assets: Iterable[str]) -> dict[str, FeedStatus | None]:
    names = list(assets)
    if not names:
        return {}
    pipe = client.pipeline(transaction=False)
    for asset in names:
        pipe.hgetall(feed_status_key(asset))
    return {asset: FeedStatus.from_redis(asset, raw) for asset, raw in zip(names, pipe.execute(), strict=True)}


def read_redis_stats(client: redis.Redis, *, assets: Iterable[str]) -> RedisStats:
    """Server figures and, per asset, the contract count and feed status."""
    names = list(assets)
    pipe = client.pipeline(transaction=False)
    pipe.info("memory")
    pipe.info("server")
    for asset in names:
        pipe.scard(contracts_key(asset))
        pipe.hgetall(feed_status_key(asset))
    memory, server, *per_asset = pipe.execute()
    stats = RedisStats(
        used_memory=int(memory.get("used_memory", 0)),
        used_memory_human=str(memory.get("used_memory_human", "")),
        maxmemory=int(memory.get("maxmemory", 0)),
        uptime_seconds=int(server.get("uptime_in_seconds", 0)),
        version=str(server.get("redis_version", "")),
    )
    for index, asset in enumerate(names):
        count, raw_feed = per_asset[2 * index], per_asset[2 * index + 1]
        stats.assets.append(AssetCounts(asset=asset, contracts=int(count), feed=FeedStatus.from_redis(asset, raw_feed)))
    return stats


def _decoded_chain(asset: str, stored: list[bytes], *, revision: bytes | None) -> DecodedChain:
    previous = _decoded.get(asset)
    if previous is not None and previous.stored == stored:
        previous.revision = revision
        return previous
    # The ingest updates rows in place: an unchanged row is usually where it was.
    known_stored = previous.stored if previous is not None else []
    known_rows = previous.rows if previous is not None else []
    rows: list[Row] = []
    stored_json: dict[str, bytes] = {}
    for index, raw in enumerate(stored):
        row = known_rows[index] if index < len(known_stored) and known_stored[index] == raw else orjson.loads(raw)
        rows.append(row)
        stored_json[row["symbol"]] = raw
    chain = DecodedChain(stored=stored, rows=rows, stored_json=stored_json, revision=revision)
    _decoded[asset] = chain
    return chain


def _expiries(raw: list[tuple[bytes, float]]) -> list[tuple[str, int]]:
    return [(member.decode(), int(score)) for member, score in raw]
