"""What the live-chain consumer relies on, kept out of it: the asset check, the async Redis reads behind
a snapshot, the view filter, and each connection's flow control (docs/websocket.md, "Falling behind").
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import orjson
import redis.asyncio
from channels.db import database_sync_to_async

from assets.models import Asset
from chain.messages import MAX_ROWS_PER_FRAME, BadMessage, ChainView, ExpiryInfo, FeedInfo, row_chunks
from ingest.events import ChainInstruments, ChainStatus, ChainUpdate, ChangedRow, FeedState
from ingest.keys import chain_key, chain_revision_key, contracts_key, expiries_key, feed_status_key
from ingest.normalize import ContractRow
from ingest.status import FeedStatus
from ingest.symbols import SettleCoin, SymbolError, parse_symbol
from optionsite.redis_client import async_redis_connection, redis_connection

AssetState = Literal["enabled", "disabled", "unknown"]
ChainEvent = ChainUpdate | ChainInstruments | ChainStatus

# A connection may have this many messages (a snapshot or an update, however many frames it takes) sent and
# not acknowledged yet: beyond that the client is not keeping up, by its own word. It gets nothing more until it
# acknowledges, and then one fresh snapshot instead of the backlog. With the ingest's 4 flushes a second that is
# about two seconds of updates.
MAX_UNACKED_MESSAGES = 8
# And, whatever it acknowledges, a connection may have this many bytes waiting in the server's write buffer
# (sent by the consumer, not yet taken by the socket) before it gets nothing more; one message goes whenever the
# buffer is below this, however large the message. A whole chain of 1,500 contracts is ~1.2 MB of JSON (~770
# bytes a row), so a client whose link carries the stream is not cut off by one snapshot; what a client that
# stops reading can make the server hold is this plus one message (docs/websocket.md, "Falling behind").
MAX_BUFFERED_BYTES = 2 * 1024 * 1024

# An event handled this much later (ms) than the quickest of the connection's recent events waited
# in a queue: this connection (or the whole process) is behind, and the channel layer may already
# have dropped events for it (it drops when a channel holds 200). Measured against recent events, not
# against zero, so that a clock offset between the ingest's machine and this one does not count.
LATE_AFTER_MS = 2000
RECENT_EVENTS = 32


@database_sync_to_async
def asset_state(symbol: str) -> AssetState:
    enabled = Asset.objects.filter(symbol=symbol).values_list("enabled", flat=True).first()
    if enabled is None:
        return "unknown"
    return "enabled" if enabled else "disabled"


@dataclass(frozen=True)
class AssetTab:
    """An enabled asset as the page's tabs show it, with its feed's lag for the page's indicator
    (the page reads these every few seconds; the WebSocket sends the lag only in snapshots)."""

    symbol: str
    label: str
    index_price: float | None
    state: FeedState | None
    lag_p50_ms: float | None
    lag_p99_ms: float | None


def asset_tabs() -> list[AssetTab]:
    """The enabled assets in display order, each with its feed's index price, state and lag (one Redis round-trip)."""
    assets = list(Asset.objects.enabled())
    pipe = redis_connection().pipeline(transaction=False)
    for asset in assets:
        pipe.hgetall(feed_status_key(asset.symbol))
    tabs = []
    for asset, raw in zip(assets, pipe.execute() if assets else [], strict=True):
        feed = feed_info(FeedStatus.from_redis(asset.symbol, raw))
        tabs.append(
            AssetTab(
                asset.symbol, asset.label, feed["index_price"], feed["state"], feed["lag_p50_ms"], feed["lag_p99_ms"]
            )
        )
    return tabs


def listed_expiries(*, asset: str) -> list[dict[str, str | int]]:
    """The asset's expiries in delivery order, for the page to open on the nearest one."""
    raw: list[tuple[bytes, float]] = redis_connection().zrange(expiries_key(asset), 0, -1, withscores=True)  # type: ignore[assignment]
    return [{"expiry": code.decode(), "delivery_ms": int(score)} for code, score in raw]


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


# Every connection of a process handles every update of its asset, most of them in one of a few
# views (the page shows one expiry and settle coin at a time): the rows in a view are filtered and
# written as JSON once per update and view, and shared; the least recently used are forgotten.
# Filtering and encoding were half of daphne's time fanning updates out to 100 connections
# (docs/benchmarks.md).
MAX_SHARED_UPDATES = 16
_update_rows: OrderedDict[tuple[str, str | None, str | None], list[bytes]] = OrderedDict()


def update_rows_json(event: ChainUpdate, view: ChainView) -> list[bytes]:
    """The update's rows in ``view`` as JSON arrays of at most ``MAX_ROWS_PER_FRAME`` rows each
    (none when no row is in the view), put together once per event and view in this process from the
    rows' own JSON (``ingest.events.ChangedRow``)."""
    key = (event["id"], view["expiry"], view["settle"])
    chunks = _update_rows.get(key)
    if chunks is not None:
        _update_rows.move_to_end(key)
    else:
        rows = changed_rows_in_view(event["rows"], view)
        chunks = [
            b"[" + b",".join(rows[start : start + MAX_ROWS_PER_FRAME]) + b"]"
            for start in range(0, len(rows), MAX_ROWS_PER_FRAME)
        ]
        _update_rows[key] = chunks
        if len(_update_rows) > MAX_SHARED_UPDATES:
            _update_rows.popitem(last=False)
    return chunks


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


def changed_rows_in_view(changed: list[ChangedRow], view: ChainView) -> list[bytes]:
    """The JSON of an update's rows in ``view``."""
    expiry, settle = view["expiry"], view["settle"]
    return [
        row_json
        for row_expiry, row_settle, row_json in changed
        if (expiry is None or row_expiry == expiry) and (settle is None or row_settle == settle)
    ]


def rows_in_view(rows: list[ContractRow], view: ChainView) -> list[ContractRow]:
    if view["expiry"] is None and view["settle"] is None:
        return rows
    return [row for row in rows if row_in_view(row, view)]


def _chain_order(row: ContractRow) -> tuple[int, float, str, str]:
    return (row["delivery_ms"], row["strike"], row["type"], row["settle"])


Admission = Literal["forward", "skip", "resync"]


@dataclass
class Delivery:
    """One connection's flow control: frame numbers, what the client has not acknowledged yet, and
    whether it needs a fresh snapshot because it (or this process) fell behind.

    A slow reader is found out two ways: by its acknowledgements (the client's word, which a client may give
    without reading) and by what the server still holds for its socket (``buffered_bytes``, counted by the
    server: ``optionsite.write_buffer``). A consumer that is itself behind is found out by the age of the
    events it handles. Either way the connection skips events and gets one snapshot when it can take one
    again: a snapshot is at most the size of the view, a backlog has no bound.

    ``buffered_bytes`` is ``None`` under a server that does not count (Channels' test communicator, a plain
    daphne): then only acknowledgements bound what a connection is sent.
    """

    buffered_bytes: Callable[[], int] | None = None
    seq: int = 0
    resync_due: bool = False
    _unacked: deque[int] = field(default_factory=deque)
    _recent_delays: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def has_room(self) -> bool:
        if len(self._unacked) >= MAX_UNACKED_MESSAGES:
            return False
        return self.buffered_bytes is None or self.buffered_bytes() < MAX_BUFFERED_BYTES

    def sent(self, *, seq: int) -> None:
        """A message went out: its last frame is ``seq``."""
        self._unacked.append(seq)

    def acknowledge(self, seq: int) -> bool:
        """The client applied every frame up to ``seq``; ``True`` when a due snapshot can go now."""
        if seq > self.seq:
            raise BadMessage(f"ack for seq {seq}, but the last frame sent is {self.seq}")
        while self._unacked and self._unacked[0] <= seq:
            self._unacked.popleft()
        return self.resync_due and self.has_room()

    def admit(self, *, event_ts: int, now_ms: int) -> Admission:
        """What to do with an event from the ingest: forward it, skip it, or send a snapshot instead."""
        delay = now_ms - event_ts
        self._recent_delays.append(delay)
        if delay - min(self._recent_delays) > LATE_AFTER_MS or not self.has_room():
            self.defer_snapshot()
            return "skip"
        return "resync" if self.resync_due else "forward"

    def defer_snapshot(self) -> None:
        """A snapshot is owed but there is no room for it: it goes once the client acknowledges."""
        self.resync_due = True

    def snapshot_sent(self) -> None:
        self.resync_due = False
