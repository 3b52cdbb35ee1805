"""One asset's live feed: Bybit option tickers → Redis and the asset's Channels group.

A feed wires three units, each with threads of its own:

* ``AssetConnections`` (``ingest.connections``): the sockets, their subscriptions and the
  watchdog that rebuilds them; socket threads hand each ticker to a ``LatestSnapshots``;
* ``Flusher`` (``ingest.flusher``): coalesce → normalise → store → publish, every
  ``flush_interval``, and the feed status;
* ``AssetFeed`` (here), on the caller's thread: the orchestration — the lease, instrument
  refreshes (read on a thread of their own), commands from the control and assets channels,
  the watchdog's ticks, stopping.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import redis
from channels.layers import BaseChannelLayer

from ingest.bybit import DiscoveryError, fetch_option_contracts
from ingest.config import FeedSettings
from ingest.connections import AssetConnections, Shard
from ingest.events import parse_feed_command
from ingest.flusher import Flusher, InstrumentRefresh
from ingest.keys import feed_control_channel
from ingest.normalize import ContractRow, static_row
from ingest.snapshots import LatestSnapshots
from ingest.status import FeedStatus
from ingest.store import purge_asset
from ingest.symbols import OptionContract
from ingest.throttled_log import FailureLog, RateLimitedLog
from optionsite.clock import now_ms

__all__ = ["AssetFeed", "FeedSettings", "StopReason"]

logger = logging.getLogger(__name__)


class StopReason(enum.Enum):
    REQUESTED = "requested"  # worker shutdown, or the caller's stop event
    DISABLED = "disabled"  # the asset was disabled or deleted: its data is removed
    LEASE_LOST = "lease lost"  # another worker owns the asset now


class AssetFeed:
    """Runs until stopped; see the module docstring for who does what."""

    def __init__(
        self,
        *,
        asset: str,
        settings: FeedSettings,
        client: redis.Redis,
        channel_layer: BaseChannelLayer | None,
        worker: str = "",
        is_enabled: Callable[[], bool] = lambda: True,
        owns_lease: Callable[[], bool] = lambda: True,
        stop_event: threading.Event | None = None,
        fetch_contracts: Callable[[], list[OptionContract]] | None = None,
        flush_observer: Callable[[list[ContractRow], int], None] | None = None,
    ) -> None:
        """``flush_observer(rows, written_ms)`` is told what each flush wrote and when the
        write completed (the benchmark measures freshness with it)."""
        self.asset = asset
        self.settings = settings
        self.client = client
        self.is_enabled = is_enabled
        self.owns_lease = owns_lease
        self.stop_event = stop_event or threading.Event()
        self.fetch_contracts = fetch_contracts or (
            lambda: fetch_option_contracts(asset=asset, rest_url=settings.rest_url)
        )
        self.status = FeedStatus(asset=asset, worker=worker, started_ts=now_ms())
        log = RateLimitedLog(logger)
        self._log = log
        self._command_failures = FailureLog(
            logger, "reading the control channel", asset=asset, expected=(redis.RedisError,)
        )
        snapshots = LatestSnapshots()
        self.connections = AssetConnections(
            asset=asset, settings=settings, snapshots=snapshots, stop_event=self.stop_event, log=log
        )
        self.flusher = Flusher(
            asset=asset,
            settings=settings,
            client=client,
            channel_layer=channel_layer,
            snapshots=snapshots,
            connections=self.connections.figures,
            status=self.status,
            log=log,
            observer=flush_observer,
            owns_lease=owns_lease,
        )
        self._symbols: set[str] = set()  # the listed contracts, as of the last refresh
        self._last_enabled_check = time.monotonic()

    @property
    def shards(self) -> list[Shard]:
        return self.connections.shards

    def run(self) -> StopReason:
        logger.info("feed starting", extra={"asset": self.asset})
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        from assets.events import assets_changed_channel

        pubsub.subscribe(feed_control_channel(), assets_changed_channel())
        self.flusher.start()
        reading: Future[list[OptionContract]] | None = None
        next_refresh = 0.0
        next_lease_check = 0.0
        reason = StopReason.REQUESTED
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if now >= next_lease_check:
                    next_lease_check = now + 2.0
                    if not self.owns_lease():
                        reason = StopReason.LEASE_LOST
                        break
                if reading is None and now >= next_refresh:
                    reading = self._read_instruments()
                if reading is not None and reading.done():
                    refreshed = self._refreshed(reading)
                    reading = None
                    next_refresh = now + (self.settings.refresh_interval if refreshed else self.settings.refresh_retry)
                self.connections.watch(now)
                command = self._next_command(pubsub, timeout=0.2)
                if command == "refresh":
                    next_refresh = 0.0
                elif command == "assets" and not self.is_enabled():
                    reason = StopReason.DISABLED
                    break
                if now - self._last_enabled_check > 10 and not self._check_enabled():
                    reason = StopReason.DISABLED
                    break
        finally:
            pubsub.close()
            self._shutdown(reason)
        logger.info("feed stopped: %s", reason.value, extra={"asset": self.asset})
        return reason

    def stop(self) -> None:
        self.stop_event.set()

    def _read_instruments(self) -> Future[list[OptionContract]]:
        """Read the instruments on a thread of their own: a slow REST answer must not hold up the
        watchdog, which rebuilds dead sockets (an 8 s answer kept a dead socket down for 8 s)."""
        reading: Future[list[OptionContract]] = Future()

        def read() -> None:
            try:
                reading.set_result(self.fetch_contracts())
            except Exception as exc:
                reading.set_exception(exc)

        threading.Thread(target=read, name=f"instruments-{self.asset}", daemon=True).start()
        return reading

    def _refreshed(self, reading: Future[list[OptionContract]]) -> bool:
        """Apply a finished instrument read; false if it failed (it is retried sooner)."""
        try:
            contracts = reading.result()
        except DiscoveryError as exc:
            self._log.warning("discovery", "%s; retrying", exc, asset=self.asset)
            return False
        except Exception:  # a bug in a fetcher must not end the feed: log it, retry
            logger.exception("instrument refresh failed", extra={"asset": self.asset})
            return False
        current = {contract.symbol: contract for contract in contracts}
        new = sorted(current.keys() - self._symbols)
        gone = self._symbols - current.keys()
        self._symbols = set(current)
        self.flusher.store_instruments(
            InstrumentRefresh(contracts=contracts, listed=[static_row(current[symbol]) for symbol in new], gone=gone)
        )
        self.status.instruments = len(contracts)
        if new or gone:
            logger.info(
                "instruments: %d new, %d gone, %d in all",
                len(new),
                len(gone),
                len(contracts),
                extra={"asset": self.asset},
            )
        self.connections.assign(listed=new, delivered=sorted(gone))
        return True

    def _check_enabled(self) -> bool:
        self._last_enabled_check = time.monotonic()
        return self.is_enabled()

    def _next_command(self, pubsub: redis.client.PubSub, *, timeout: float) -> str | None:
        """Wait up to ``timeout`` for a message on the control or assets channel."""
        try:
            message = pubsub.get_message(timeout=timeout)
        except redis.RedisError as exc:
            self._command_failures.failed(exc)
            time.sleep(timeout)
            return None
        self._command_failures.succeeded()
        if message is None:
            return None
        if message["channel"].decode().endswith("assets:changed"):
            return "assets"
        try:
            command = parse_feed_command(message["data"])
        except ValueError as exc:
            self._log.warning("command", "ignored a feed command: %s", exc, asset=self.asset)
            return None
        return "refresh" if self.asset in command["assets"] else None

    def _shutdown(self, reason: StopReason) -> None:
        self.connections.close()
        # Once the lease is lost the asset's keys belong to the new owner: write nothing more, and not even
        # a write already on its way (a flush that waited out a Redis outage) may say "stopped".
        lease_lost = reason is StopReason.LEASE_LOST
        if not lease_lost:
            self.status.state = "stopped"
        self.flusher.stop(final_flush=not lease_lost)
        if reason is StopReason.DISABLED:
            try:
                purge_asset(self.client, asset=self.asset)
            except redis.RedisError as exc:
                logger.warning("could not remove the data of a disabled asset: %s", exc, extra={"asset": self.asset})
