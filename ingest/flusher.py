"""A feed's flusher: every ``flush_interval``, the snapshots that arrived → rows → Redis → the page.

It runs on a thread of its own and alone owns the asset's rows. Each flush takes the newest
snapshot per contract (``LatestSnapshots``), applies it to the contract's row, stores every
row that differs from what Redis holds in one write (contract hashes with the fields that
changed, chain entries, revision, feed status), sends one ``chain.update`` with those rows to
the asset's Channels group, and records how far behind the exchange the write was.

Its cost is per contract written, never per message: at Bybit's rate every contract changes
between two flushes, so a flush writes each contract once however often it was pushed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import redis
from channels.layers import BaseChannelLayer

from analytics.publisher import AnalyticsPublisher
from ingest.config import FeedSettings
from ingest.connections import ConnectionFigures
from ingest.events import FeedState, build_chain_instruments, build_chain_status, build_chain_update
from ingest.keys import chain_group
from ingest.lag import LagWindow
from ingest.normalize import BadTicker, ContractRow, apply_snapshot
from ingest.snapshots import LatestSnapshots, Snapshot
from ingest.status import FeedStatus, feed_state
from ingest.store import CONTRACT_TTL_RENEW_SECONDS, feed_status_command, row_commands, sync_instruments
from ingest.symbols import OptionContract
from ingest.throttled_log import FailureLog, RateLimitedLog
from optionsite.clock import now_ms
from optionsite.redis_client import execute_packed

logger = logging.getLogger(__name__)

# The message rate in the status is taken over this many seconds.
RATE_WINDOW_SECONDS = 5.0


def _malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``, or a no-op where there is none.

    A flush packs a few MB of commands and frees them; glibc keeps the freed pages in the
    flusher thread's arena. Measured with 2,000 contracts x 10/s: 162 MB RSS without
    trimming, 104 MB with a trim after each flush (docs/benchmarks.md).
    """
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


release_freed_memory = _malloc_trim()


class InstrumentRefresh:
    """A refresh's result, for the flusher to store between two of its writes."""

    __slots__ = ("contracts", "gone", "listed")

    def __init__(self, *, contracts: list[OptionContract], listed: list[ContractRow], gone: set[str]) -> None:
        self.contracts = contracts  # every contract now listed
        self.listed = listed  # the rows of the new ones
        self.gone = gone  # symbols delivered


class Flusher:
    """Owns the asset's rows; ``start`` runs it on its thread, ``stop`` ends it (with a last flush)."""

    def __init__(
        self,
        *,
        asset: str,
        settings: FeedSettings,
        client: redis.Redis,
        channel_layer: BaseChannelLayer | None,
        snapshots: LatestSnapshots,
        connections: Callable[[], ConnectionFigures],
        status: FeedStatus,
        log: RateLimitedLog,
        observer: Callable[[list[ContractRow], int], None] | None = None,
        owns_lease: Callable[[], bool] = lambda: True,
    ) -> None:
        """``observer(rows, written_ms)`` is told what each flush stored and when the write completed;
        ``owns_lease()`` is asked before each write: once the asset's lease is lost, its keys are another
        feed's, and this one writes nothing more (not even "stopped")."""
        self.asset = asset
        self.settings = settings
        self.client = client
        self.channel_layer = channel_layer
        self.snapshots = snapshots
        self.connections = connections
        self.status = status
        self.log = log
        self.observer = observer
        self.owns_lease = owns_lease
        self.failures = FailureLog(logger, "flush", asset=asset, expected=(redis.RedisError,))
        self.lags = LagWindow(settings.lag_window)
        self._rows: dict[str, ContractRow] = {}  # the latest applied, per contract
        self._stored: dict[str, ContractRow] = {}  # the rows as Redis holds them
        self._raw: dict[str, dict[str, Any]] = {}  # the snapshot each row was last updated from
        self._unstored: set[str] = set()  # applied since the last write that succeeded
        self._ttl_due: dict[str, float] = {}  # symbol → when its hash's TTL is due again
        self._rejected_updates = 0
        self._newest_ts = 0  # the exchange ts of the newest row written (epoch ms)
        self._lock = threading.Lock()
        self._instrument_changes: list[InstrumentRefresh] = []
        self._rate_window: deque[tuple[float, int]] = deque()
        self._last_state: FeedState | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._final_flush = True
        self.analytics = AnalyticsPublisher(asset) if settings.analytics else None

    # --- the feed's thread ------------------------------------------------------------

    def store_instruments(self, change: InstrumentRefresh) -> None:
        """Have the next flush store a refreshed instrument set.

        Stored from the flusher, between two of its writes: stored from another thread, a
        flush in flight could write a delivered contract's hash back after it was deleted.
        """
        with self._lock:
            self._instrument_changes.append(change)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"flush-{self.asset}", daemon=True)
        self._thread.start()

    def stop(self, *, final_flush: bool, timeout: float = 10) -> None:
        """Stop after one last flush, or none (once the lease is lost the keys are another's)."""
        self._final_flush = final_flush
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    # --- the flusher's thread ---------------------------------------------------------

    def _loop(self) -> None:
        loop = asyncio.new_event_loop()  # one loop for the thread: channels_redis pools per loop
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                self._flush_if_owner(loop)
                release_freed_memory()
                self._stopping.wait(max(0.0, self.settings.flush_interval - (time.monotonic() - started)))
            if self._final_flush and self.owns_lease():
                self.flush(loop)
        except Exception:
            logger.exception("flush failed", extra={"asset": self.asset})
        finally:
            loop.close()

    def _flush_if_owner(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.owns_lease():
            return  # the feed stops at its next lease check
        try:
            self.flush(loop)
        except Exception as exc:  # Redis away, or a bug: the next flush tries again
            self.failures.failed(exc)
        else:
            self.failures.succeeded()

    def flush(self, loop: asyncio.AbstractEventLoop) -> int:
        """Store what changed since the last write that succeeded; returns how many contracts."""
        events: list[dict[str, Any]] = self._store_instrument_changes()
        for symbol, snapshot in self.snapshots.take().items():
            self._apply(symbol, snapshot)
        rows = [self._rows[symbol] for symbol in self._unstored]
        now = time.monotonic()
        if self.analytics is not None and (rows or events):
            self.analytics.chain_changed()
        hashes = self.settings.contract_hashes
        renew_ttl = {row["symbol"] for row in rows if self._ttl_due.get(row["symbol"], 0.0) < now} if hashes else set()
        if rows:
            self.status.index_price = rows[-1]["index_price"] or self.status.index_price
            self._newest_ts = max(self._newest_ts, max(row["ts"] or 0 for row in rows))
        self._update_status(now)
        rows_json = [orjson.dumps(row) for row in rows]  # for Redis and the chain.update alike
        commands = row_commands(
            asset=self.asset,
            rows=rows,
            rows_json=rows_json,
            previous=self._stored,
            renew_ttl=renew_ttl,
            contract_hashes=hashes,
        )
        commands.append(feed_status_command(asset=self.asset, status=self.status.to_redis()))
        execute_packed(self.client, commands)
        written_ms = now_ms()
        for row in rows:
            self._stored[row["symbol"]] = row
        for symbol in renew_ttl:
            self._ttl_due[symbol] = now + CONTRACT_TTL_RENEW_SECONDS
        self._unstored.clear()
        self.lags.add((written_ms - row["ts"] for row in rows if row["ts"] is not None), now=time.monotonic())
        if self.observer is not None:
            self.observer(rows, written_ms)
        if rows:
            events.append(dict(build_chain_update(asset=self.asset, rows=rows, rows_json=rows_json)))
        if self.status.state != self._last_state:
            self._last_state = self.status.state
            events.append(dict(build_chain_status(asset=self.asset, state=self.status.state)))
        if events and self.channel_layer is not None:
            loop.run_until_complete(self._send_events(events))
        if self.analytics is not None:
            self._publish_analytics(loop, now=now)
        return len(rows)

    def _publish_analytics(self, loop: asyncio.AbstractEventLoop, *, now: float) -> None:
        """Analytics, when due: after the rows are stored and announced, so that computing them (tens of ms once
        a second) never holds back a row (analytics.publisher)."""
        assert self.analytics is not None
        publication = self.analytics.due(
            self._rows.values(), now=now, now_ms=now_ms(), feed_behind=self.status.state == "stale"
        )
        if publication is None:
            return
        execute_packed(self.client, publication.commands)
        self.analytics.published(publication, now=now)
        if self.channel_layer is not None:
            loop.run_until_complete(self._send_events([dict(publication.event)]))

    def _store_instrument_changes(self) -> list[dict[str, Any]]:
        with self._lock:
            changes, self._instrument_changes = self._instrument_changes, []
        events: list[dict[str, Any]] = []
        for index, change in enumerate(changes):
            try:
                stored = sync_instruments(self.client, asset=self.asset, contracts=change.contracts)
            except redis.RedisError:
                with self._lock:  # keep the ones not stored yet for the next flush, in order
                    self._instrument_changes[:0] = changes[index:]
                raise
            for symbol in change.gone:
                for kept in (self._rows, self._stored, self._raw, self._ttl_due):
                    kept.pop(symbol, None)
                self._unstored.discard(symbol)
            for row in change.listed:
                self._rows.setdefault(row["symbol"], row)
                self._stored.setdefault(row["symbol"], row)  # sync_instruments stored it as listed
            if stored.listed or stored.delivered:
                events.append(
                    dict(build_chain_instruments(asset=self.asset, listed=stored.listed, delivered=stored.delivered))
                )
        return events

    def _apply(self, symbol: str, snapshot: Snapshot) -> None:
        row = self._rows.get(symbol)
        if row is None:  # delivered, or not ours: nothing to keep
            return
        if row["ts"] is not None and snapshot.ts < row["ts"]:
            return  # an older snapshot than the one applied
        try:
            applied = apply_snapshot(
                row,
                snapshot.data,
                ts=snapshot.ts,
                received_ts=snapshot.received_ts,
                previous_data=self._raw.get(symbol),
            )
        except BadTicker as exc:
            self._rejected_updates += 1
            self.log.warning("bad-ticker", "rejected a ticker for %s: %s", symbol, exc, asset=self.asset)
            return
        self._rows[symbol] = applied.row
        if applied.kept:
            # Counted with the rejected frames: Bybit never sends half a side, nor a value that is no number.
            self._rejected_updates += 1
            self.log.warning(
                "partial-ticker",
                "kept the previous %s of %s: the ticker had them in part or not as numbers",
                ", ".join(applied.kept),
                symbol,
                asset=self.asset,
            )
            # Its text no longer stands for the row's values: the next snapshot is read in full.
            self._raw.pop(symbol, None)
        else:
            self._raw[symbol] = snapshot.data
        self._unstored.add(symbol)

    def _update_status(self, now: float) -> None:
        status = self.status
        figures = self.connections()
        self._rate_window.append((now, figures.messages))
        while len(self._rate_window) > 2 and now - self._rate_window[0][0] > RATE_WINDOW_SECONDS:
            self._rate_window.popleft()
        first_time, first_count = self._rate_window[0]
        status.messages_per_second = (
            round((figures.messages - first_count) / (now - first_time), 1) if now > first_time else 0.0
        )
        status.messages_total = max(status.messages_total, figures.messages)
        status.connections = figures.connections
        status.connections_wanted = figures.wanted
        status.subscribed = figures.subscribed
        status.rejected_frames = figures.rejected + self._rejected_updates
        status.reconnects = figures.reconnects
        status.lag_p50_ms, status.lag_p99_ms = self.lags.percentiles(now=now)
        written_ms = now_ms()
        if figures.last_message_at:
            status.last_message_ts = written_ms - int((now - figures.last_message_at) * 1000)
        # What this write makes visible is no newer than the newest row it writes.
        status.data_ts = min(figures.data_ts, self._newest_ts) if figures.data_ts and self._newest_ts else 0
        status.updated_ts = written_ms
        if status.state != "stopped":
            status.state = feed_state(
                data_age=status.data_age(written_ms),
                lag_p99_ms=status.lag_p99_ms,
                connections=figures.connections,
                wanted=figures.wanted,
                stale_after=self.settings.stale_after,
            )

    async def _send_events(self, events: Iterable[dict[str, Any]]) -> None:
        assert self.channel_layer is not None
        for event in events:
            await self.channel_layer.group_send(chain_group(self.asset), event)
