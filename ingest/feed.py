"""One asset's live feed: Bybit option tickers → Redis and the asset's Channels group.

Threads, and what each may touch:

* pybit's socket threads (one per connection) run ``_on_frame``: they only keep the latest
  snapshot per contract in ``_pending`` (option tickers are full snapshots: latest wins)
  and count. Nothing slow, nothing that can raise into pybit.
* the flusher thread, every ``flush_interval``: applies the pending snapshots to the rows
  it alone owns, writes the changed ones to Redis in one pipeline, sends one batched
  ``chain.update`` to the asset's group, and writes the feed status.
* the caller's thread runs ``run()``: the watchdog that builds and rebuilds connections
  (exponential backoff with jitter), instrument refreshes, commands and lease checks.
* short-lived connect threads, so that a hung connection attempt cannot stall the watchdog.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import enum
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from channels.layers import BaseChannelLayer

from ingest.bybit import DiscoveryError, OptionSocket, fetch_option_contracts
from ingest.events import (
    FeedState,
    build_chain_instruments,
    build_chain_status,
    build_chain_update,
    parse_feed_command,
)
from ingest.keys import chain_group, feed_control_channel
from ingest.normalize import BadTicker, ContractRow, apply_ticker, static_row
from ingest.status import FeedStatus
from ingest.store import (
    CONTRACT_TTL_RENEW_SECONDS,
    purge_asset,
    sync_instruments,
    write_feed_status,
    write_rows,
)
from ingest.symbols import OptionContract

logger = logging.getLogger(__name__)

TOPIC_PREFIX = "tickers."


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


@dataclass(frozen=True)
class FeedSettings:
    ws_url: str
    rest_url: str
    flush_interval: float = 0.25
    stale_after: float = 15.0
    # A connection that delivers nothing for this long is rebuilt: Bybit pushes every
    # subscribed ticker every 100 ms, so silence means a stalled socket, not a calm market.
    silence_timeout: float = 10.0
    connect_timeout: float = 10.0
    topics_per_connection: int = 2000  # Bybit's limit for option sockets (reference §1.4)
    topics_per_request: int = 500  # keeps a request's args under 21,000 characters
    max_args_chars: int = 21_000
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    refresh_interval: float = 300.0
    refresh_retry: float = 15.0
    ping_interval: int = 20
    ping_timeout: int = 10

    @classmethod
    def from_django(cls) -> FeedSettings:
        from django.conf import settings

        return cls(
            ws_url=settings.BYBIT_WS_URL,
            rest_url=settings.BYBIT_REST_URL,
            flush_interval=settings.FEED_FLUSH_INTERVAL,
            stale_after=settings.FEED_STALE_AFTER,
            silence_timeout=settings.FEED_SILENCE_TIMEOUT,
            refresh_interval=settings.FEED_REFRESH_INTERVAL,
        )


class StopReason(enum.Enum):
    REQUESTED = "requested"  # worker shutdown, or the caller's stop event
    DISABLED = "disabled"  # the asset was disabled or deleted: its data is removed
    LEASE_LOST = "lease lost"  # another worker owns the asset now


def backoff_delay(attempt: int, *, initial: float, maximum: float) -> float:
    """Exponential backoff with "equal jitter": never a storm, never in lock-step."""
    ceiling = min(maximum, initial * 2 ** min(attempt, 30))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def subscription_requests(topics: list[str], *, per_request: int, max_chars: int) -> Iterator[list[str]]:
    """Split topics into subscribe requests within Bybit's per-request limits."""
    chunk: list[str] = []
    size = 2  # the brackets of the JSON array
    for topic in topics:
        cost = len(topic) + 3  # quotes and comma
        if chunk and (len(chunk) >= per_request or size + cost > max_chars):
            yield chunk
            chunk, size = [], 2
        chunk.append(topic)
        size += cost
    if chunk:
        yield chunk


class RateLimitedLog:
    """At most one line per ``interval`` seconds per key; the lines in between are counted."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: Any, asset: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        suppressed = self._suppressed.pop(key, 0)
        self._last[key] = now
        suffix = f" ({suppressed} more since the last such line)" if suppressed else ""
        logger.warning(message + suffix, *args, extra={"asset": asset})


@dataclass(eq=False)
class Shard:
    """One connection and the topics it carries (at most ``topics_per_connection``)."""

    number: int
    symbols: set[str] = field(default_factory=set)
    socket: OptionSocket | None = None
    candidate: OptionSocket | None = None
    connect_thread: threading.Thread | None = None
    connect_started: float = 0.0
    attempts: int = 0
    next_attempt_at: float = 0.0
    connected_at: float = 0.0
    last_message_at: float = 0.0
    confirmed: set[str] = field(default_factory=set)
    # Held while the topic set changes and while a new socket sends its first subscribe,
    # so that a topic is requested exactly once per connection.
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Written by the socket thread only; read by the others.
    messages: int = 0
    bad_frames: int = 0


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
        self.channel_layer = channel_layer
        self.is_enabled = is_enabled
        self.owns_lease = owns_lease
        self.stop_event = stop_event or threading.Event()
        self.fetch_contracts = fetch_contracts or (
            lambda: fetch_option_contracts(asset=asset, rest_url=settings.rest_url)
        )
        self.flush_observer = flush_observer
        self.status = FeedStatus(asset=asset, worker=worker, started_ts=_now_ms())
        self.shards: list[Shard] = []
        self._shard_numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[dict[str, Any], int, int]] = {}
        # (contracts now listed, rows of the new ones, symbols gone), for the flusher to store.
        self._instrument_changes: list[tuple[list[OptionContract], list[ContractRow], set[str]]] = []
        self._symbols: set[str] = set()  # the watchdog's view of the listed contracts
        self._rows: dict[str, ContractRow] = {}  # the flusher's alone, as is:
        self._ttl_renewed: dict[str, float] = {}  # symbol → when its hash's TTL is due again
        self._rejected_updates = 0
        self._rejected_topics = 0
        self._log = RateLimitedLog()
        self._flusher_done = threading.Event()
        self._stop_flusher = threading.Event()
        self._last_state: FeedState | None = None
        self._last_enabled_check = time.monotonic()
        self._final_flush = True
        self._rate_window: list[tuple[float, int]] = []

    # --- the watchdog (caller's thread) ----------------------------------------------

    def run(self) -> StopReason:
        logger.info("feed starting", extra={"asset": self.asset})
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        from assets.events import assets_changed_channel

        pubsub.subscribe(feed_control_channel(), assets_changed_channel())
        flusher = threading.Thread(target=self._flush_loop, name=f"flush-{self.asset}", daemon=True)
        flusher.start()
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
                if now >= next_refresh:
                    next_refresh = now + (
                        self.settings.refresh_interval if self.refresh_instruments() else self.settings.refresh_retry
                    )
                self._watch_connections(now)
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
            self._shutdown(reason, flusher)
        logger.info("feed stopped: %s", reason.value, extra={"asset": self.asset})
        return reason

    def _check_enabled(self) -> bool:
        self._last_enabled_check = time.monotonic()
        return self.is_enabled()

    def _next_command(self, pubsub: redis.client.PubSub, *, timeout: float) -> str | None:
        """Wait up to ``timeout`` for a message on the control or assets channel."""
        try:
            message = pubsub.get_message(timeout=timeout)
        except redis.RedisError as exc:
            self._log.warning("pubsub", "control channel failed: %s", exc, asset=self.asset)
            time.sleep(timeout)
            return None
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

    def refresh_instruments(self) -> bool:
        """Re-read the instruments; subscribe what is new, drop what was delivered."""
        try:
            contracts = self.fetch_contracts()
        except DiscoveryError as exc:
            self._log.warning("discovery", "%s; retrying", exc, asset=self.asset)
            return False
        current = {contract.symbol: contract for contract in contracts}
        new = sorted(current.keys() - self._symbols)
        gone = self._symbols - current.keys()
        self._symbols = set(current)
        # The flusher stores the new instrument set, between two of its writes: stored from
        # here, a flush in flight could write a delivered contract's hash back after it
        # was deleted.
        with self._lock:
            self._instrument_changes.append((contracts, [static_row(current[symbol]) for symbol in new], gone))
        self.status.instruments = len(contracts)
        if new or gone:
            logger.info(
                "instruments: %d new, %d gone, %d in all",
                len(new),
                len(gone),
                len(contracts),
                extra={"asset": self.asset},
            )
        self._assign_topics(listed=new, delivered=sorted(gone))
        return True

    def _assign_topics(self, *, listed: list[str], delivered: list[str]) -> None:
        gone = set(delivered)
        for shard in self.shards:
            with shard.lock:
                dropped = sorted(shard.symbols & gone)
                if dropped:
                    shard.symbols -= gone
                    shard.confirmed -= gone
                    self._send_requests(shard, "unsubscribe", dropped)
        placed: dict[Shard, list[str]] = {}
        for symbol in listed:
            target = next(
                (
                    s
                    for s in self.shards
                    if len(s.symbols) + len(placed.get(s, [])) < self.settings.topics_per_connection
                ),
                None,
            )
            if target is None:
                target = Shard(number=next(self._shard_numbers))
                self.shards.append(target)
            placed.setdefault(target, []).append(symbol)
        for shard, symbols in placed.items():
            with shard.lock:
                shard.symbols.update(symbols)
                self._send_requests(shard, "subscribe", symbols)
        emptied = [shard for shard in self.shards if not shard.symbols]
        for shard in emptied:
            self._teardown(shard)
            self.shards.remove(shard)

    def _send_requests(self, shard: Shard, op: str, symbols: list[str]) -> None:
        """Send (un)subscribe requests on a live socket; a socket still connecting sends
        the whole topic list itself once connected."""
        socket = shard.socket
        if socket is None:
            return
        topics = [TOPIC_PREFIX + symbol for symbol in symbols]
        try:
            for chunk in subscription_requests(
                topics, per_request=self.settings.topics_per_request, max_chars=self.settings.max_args_chars
            ):
                socket.send_json({"op": op, "req_id": f"{op}-{self.asset}-{shard.number}", "args": chunk})
        except Exception as exc:  # a socket that died between the check and the send
            logger.info("could not %s on connection %d: %s", op, shard.number, exc, extra={"asset": self.asset})

    def _watch_connections(self, now: float) -> None:
        for shard in self.shards:
            socket = shard.socket
            if socket is not None:
                shard.connect_thread = None
                dead = socket.exited or not socket.is_connected()
                silent = now - max(shard.last_message_at, shard.connected_at) > self.settings.silence_timeout
                if dead or silent:
                    why = "disconnected" if dead else f"silent for {self.settings.silence_timeout:.0f} s"
                    self._schedule_reconnect(shard, now, why)
                continue
            if shard.connect_thread is not None:
                if shard.connect_thread.is_alive():
                    if now - shard.connect_started > self.settings.connect_timeout and shard.candidate is not None:
                        shard.candidate.close()  # unblocks pybit's connect loop, which then raises
                    continue
                shard.connect_thread = None
                if shard.socket is None:
                    self._schedule_reconnect(shard, now, "connection attempt failed")
                continue
            if now >= shard.next_attempt_at:
                shard.connect_started = now
                shard.connect_thread = threading.Thread(
                    target=self._connect, args=(shard,), name=f"connect-{self.asset}-{shard.number}", daemon=True
                )
                shard.connect_thread.start()

    def _schedule_reconnect(self, shard: Shard, now: float, why: str) -> None:
        self._teardown(shard)
        delay = backoff_delay(shard.attempts, initial=self.settings.backoff_initial, maximum=self.settings.backoff_max)
        shard.attempts += 1
        shard.next_attempt_at = now + delay
        self.status.reconnects += 1
        self._log.warning(
            f"reconnect-{shard.number}",
            "connection %d %s; reconnecting in %.1f s (attempt %d)",
            shard.number,
            why,
            delay,
            shard.attempts,
            asset=self.asset,
        )

    def _teardown(self, shard: Shard) -> None:
        socket, shard.socket = shard.socket, None
        shard.confirmed = set()
        if socket is not None:
            # Closing waits for the socket thread; never on the watchdog's own time.
            threading.Thread(target=socket.close, daemon=True).start()

    def _connect(self, shard: Shard) -> None:
        socket = OptionSocket(
            url=self.settings.ws_url,
            on_frame=lambda frame: self._on_frame(shard, frame),
            on_bad_frame=lambda why: self._on_bad_frame(shard, why),
            ping_interval=self.settings.ping_interval,
            ping_timeout=self.settings.ping_timeout,
        )
        shard.candidate = socket
        try:
            socket.open()
        except Exception as exc:
            logger.info("connection %d failed: %s", shard.number, exc, extra={"asset": self.asset})
            socket.close()
            return
        finally:
            shard.candidate = None
        if self.stop_event.is_set():
            socket.close()
            return
        shard.connected_at = time.monotonic()
        with shard.lock:
            shard.socket = socket
            self._send_requests(shard, "subscribe", sorted(shard.symbols))
        logger.info(
            "connection %d up, %d topics requested", shard.number, len(shard.symbols), extra={"asset": self.asset}
        )

    # --- the hot path (pybit's socket threads) ---------------------------------------

    def _on_frame(self, shard: Shard, frame: dict[str, Any]) -> None:
        topic = frame.get("topic")
        if isinstance(topic, str) and topic.startswith(TOPIC_PREFIX):
            data = frame.get("data")
            ts = frame.get("ts")
            if not isinstance(data, dict) or not isinstance(ts, int):
                shard.bad_frames += 1
                return
            received = _now_ms()
            with self._lock:
                self._pending[topic[len(TOPIC_PREFIX) :]] = (data, ts, received)
            shard.messages += 1
            shard.last_message_at = time.monotonic()
            if shard.attempts:
                shard.attempts = 0
            return
        if frame.get("type") == "COMMAND_RESP":
            self._on_command_reply(shard, frame)
            return
        shard.bad_frames += 1
        self._log.warning("unknown-frame", "unknown frame: %.200s", orjson.dumps(frame).decode(), asset=self.asset)

    def _on_bad_frame(self, shard: Shard, why: str) -> None:
        shard.bad_frames += 1
        self._log.warning("bad-frame", "rejected a frame: %s", why, asset=self.asset)

    def _on_command_reply(self, shard: Shard, frame: dict[str, Any]) -> None:
        raw = frame.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        succeeded = [t for t in data.get("successTopics") or [] if isinstance(t, str)]
        failed = [t for t in data.get("failTopics") or [] if isinstance(t, str)]
        # Option replies carry no op (reference §1.2): an unsubscribe reply also lists its
        # topics as "successTopics", so only topics the shard still carries count.
        shard.confirmed.update(
            symbol for topic in succeeded if (symbol := topic.removeprefix(TOPIC_PREFIX)) in shard.symbols
        )
        if failed or frame.get("success") is False:
            self._rejected_topics += len(failed)
            self._log.warning(
                "fail-topics", "Bybit refused %d topic(s), e.g. %s", len(failed), failed[:3], asset=self.asset
            )

    # --- the flusher ------------------------------------------------------------------

    def _flush_loop(self) -> None:
        loop = asyncio.new_event_loop()  # one loop for the thread: channels_redis pools per loop
        try:
            while not self._stop_flusher.is_set():
                started = time.monotonic()
                try:
                    self.flush(loop)
                except Exception:
                    self._log_exception()
                release_freed_memory()
                self._stop_flusher.wait(max(0.0, self.settings.flush_interval - (time.monotonic() - started)))
            if self._final_flush:
                self.flush(loop)
        except Exception:
            self._log_exception()
        finally:
            loop.close()
            self._flusher_done.set()

    def _log_exception(self) -> None:
        logger.exception("flush failed", extra={"asset": self.asset})

    def flush(self, loop: asyncio.AbstractEventLoop) -> int:
        """Write what changed since the previous flush; returns how many contracts."""
        with self._lock:
            pending, self._pending = self._pending, {}
            changes, self._instrument_changes = self._instrument_changes, []
        events: list[dict[str, Any]] = []
        for index, (contracts, new_rows, gone) in enumerate(changes):
            try:
                change = sync_instruments(self.client, asset=self.asset, contracts=contracts)
            except redis.RedisError:
                with self._lock:  # keep the ones not stored yet for the next flush, in order
                    self._instrument_changes[:0] = changes[index:]
                raise
            for symbol in gone:
                self._rows.pop(symbol, None)
                self._ttl_renewed.pop(symbol, None)
            for row in new_rows:
                self._rows.setdefault(row["symbol"], row)
            if change.listed or change.delivered:
                event = build_chain_instruments(asset=self.asset, listed=change.listed, delivered=change.delivered)
                events.append(dict(event))
        applied = list(self._apply(pending))
        changed = [row for row, _ in applied]
        now = time.monotonic()
        renew_ttl = {row["symbol"] for row in changed if self._ttl_renewed.get(row["symbol"], 0) < now}
        for symbol in renew_ttl:
            self._ttl_renewed[symbol] = now + CONTRACT_TTL_RENEW_SECONDS
        if changed:
            events.append(dict(build_chain_update(asset=self.asset, rows=changed)))
            self.status.index_price = changed[-1]["index_price"] or self.status.index_price
        self._update_status()
        pipe = self.client.pipeline(transaction=False)
        write_rows(
            pipe,
            asset=self.asset,
            rows=changed,
            previous={previous["symbol"]: previous for _, previous in applied},
            renew_ttl=renew_ttl,
        )
        write_feed_status(pipe, asset=self.asset, status=self.status.to_redis())
        pipe.execute()
        if self.flush_observer is not None:
            self.flush_observer(changed, _now_ms())
        if self.status.state != self._last_state:
            self._last_state = self.status.state
            events.append(dict(build_chain_status(asset=self.asset, state=self.status.state)))
        if events and self.channel_layer is not None:
            loop.run_until_complete(self._send_events(events))
        return len(changed)

    async def _send_events(self, events: Iterable[dict[str, Any]]) -> None:
        assert self.channel_layer is not None
        for event in events:
            await self.channel_layer.group_send(chain_group(self.asset), event)

    def _apply(self, pending: dict[str, tuple[dict[str, Any], int, int]]) -> Iterator[tuple[ContractRow, ContractRow]]:
        """The updated rows, each with the row it replaces."""
        for symbol, (data, ts, received) in pending.items():
            row = self._rows.get(symbol)
            if row is None:  # delivered, or not ours: nothing to keep
                continue
            if row["ts"] is not None and ts < row["ts"]:
                continue  # an older snapshot than the one applied
            try:
                updated = apply_ticker(row, data, ts=ts, received_ts=received)
            except BadTicker as exc:
                self._rejected_updates += 1
                self._log.warning("bad-ticker", "rejected a ticker for %s: %s", symbol, exc, asset=self.asset)
                continue
            self._rows[symbol] = updated
            yield updated, row

    def _update_status(self) -> None:
        status = self.status
        now = time.monotonic()
        live = [shard for shard in self.shards if shard.socket is not None]
        messages = sum(shard.messages for shard in self.shards)
        last = max((shard.last_message_at for shard in self.shards), default=0.0)
        self._rate_window.append((now, messages))
        while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 5:
            self._rate_window.pop(0)
        first_time, first_count = self._rate_window[0]
        status.messages_per_second = (
            round((messages - first_count) / (now - first_time), 1) if now > first_time else 0.0
        )
        status.messages_total = max(status.messages_total, messages)
        status.connections = len(live)
        status.connections_wanted = len(self.shards)
        status.subscribed = sum(len(shard.confirmed) for shard in live)
        status.rejected_frames = sum(shard.bad_frames for shard in self.shards) + self._rejected_updates
        status.rejected_frames += self._rejected_topics
        if last:
            status.last_message_ts = _now_ms() - int((now - last) * 1000)
        status.updated_ts = _now_ms()
        if status.state == "stopped":
            return
        if not last:
            status.state = "connecting"
        elif now - last > self.settings.stale_after:
            status.state = "stale"
        elif len(live) < len(self.shards):
            status.state = "connecting"
        else:
            status.state = "live"

    # --- stopping ---------------------------------------------------------------------

    def stop(self) -> None:
        self.stop_event.set()

    def _shutdown(self, reason: StopReason, flusher: threading.Thread) -> None:
        for shard in self.shards:
            if shard.candidate is not None:
                shard.candidate.close()
            self._teardown(shard)
        self.status.state = "stopped"
        # Once the lease is lost the asset's keys belong to the new owner: write nothing more.
        self._final_flush = reason is not StopReason.LEASE_LOST
        self._stop_flusher.set()
        self._flusher_done.wait(timeout=10)
        if reason is StopReason.DISABLED:
            try:
                purge_asset(self.client, asset=self.asset)
            except redis.RedisError as exc:
                logger.warning("could not remove the data of a disabled asset: %s", exc, extra={"asset": self.asset})


def _now_ms() -> int:
    return int(time.time() * 1000)
