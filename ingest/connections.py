"""One asset's sockets to Bybit: topics spread over connections, each rebuilt when it fails.

Threads, and what each may touch:

* pybit's socket threads (one per connection) run ``_on_frame``: they hand each ticker to
  the ``LatestSnapshots`` and count. Nothing slow, nothing that can raise into pybit.
* the feed's thread calls ``assign`` and ``watch``: the watchdog that builds and rebuilds
  connections (exponential backoff with jitter) and keeps their subscriptions.
* short-lived connect threads, so that a hung connection attempt cannot stall the watchdog.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingest.bybit import OptionSocket
from ingest.config import FeedSettings
from ingest.snapshots import LatestSnapshots, Snapshot
from ingest.throttled_log import RateLimitedLog
from optionsite.clock import now_ms

logger = logging.getLogger(__name__)

TOPIC_PREFIX = "tickers."


def backoff_delay(attempt: int, *, initial: float, maximum: float) -> float:
    """Exponential backoff, jittered over the top fifth of each step: never a storm, never in lock-step.

    The narrow jitter keeps the shortest delay at the cap close to the cap: the cap bounds how late the feed
    finds the exchange back, the shortest delay how many connections it makes meanwhile (docs/feed.md).
    """
    ceiling = min(maximum, initial * 2 ** min(attempt, 30))
    return ceiling * 0.8 + random.uniform(0, ceiling * 0.2)


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
    newest_ts: int = 0  # the exchange ts of the newest ticker this connection delivered (epoch ms)


@dataclass(frozen=True)
class ConnectionFigures:
    """What the feed status says of the connections, read in one go."""

    connections: int  # connected sockets
    wanted: int  # sockets the topics need
    subscribed: int  # topics Bybit confirmed on connected sockets
    messages: int  # tickers received since the feed started
    last_message_at: float  # monotonic time of the last ticker; 0.0 if none yet
    # The exchange ts of the newest ticker of the connection that is furthest behind (epoch ms): how old
    # the freshest data of every connection is, at least. 0 while a connection has delivered none.
    data_ts: int
    rejected: int  # bad frames and topics Bybit refused
    reconnects: int


class AssetConnections:
    """The connections of one asset's feed; the feed's thread drives them (``assign``, ``watch``)."""

    def __init__(
        self,
        *,
        asset: str,
        settings: FeedSettings,
        snapshots: LatestSnapshots,
        stop_event: threading.Event,
        log: RateLimitedLog,
    ) -> None:
        self.asset = asset
        self.settings = settings
        self.snapshots = snapshots
        self.stop_event = stop_event
        self.log = log
        self.shards: list[Shard] = []
        self._numbers = itertools.count(1)
        self._reconnects = 0
        self._rejected_topics = 0

    def figures(self) -> ConnectionFigures:
        live = [shard for shard in self.shards if shard.socket is not None]
        return ConnectionFigures(
            connections=len(live),
            wanted=len(self.shards),
            subscribed=sum(len(shard.confirmed) for shard in live),
            messages=sum(shard.messages for shard in self.shards),
            last_message_at=max((shard.last_message_at for shard in self.shards), default=0.0),
            data_ts=min((shard.newest_ts for shard in self.shards if shard.symbols), default=0),
            rejected=sum(shard.bad_frames for shard in self.shards) + self._rejected_topics,
            reconnects=self._reconnects,
        )

    # --- topics -------------------------------------------------------------------------

    def assign(self, *, listed: list[str], delivered: list[str]) -> None:
        """Subscribe ``listed`` where there is room (new connections if need be); drop ``delivered``."""
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
                target = Shard(number=next(self._numbers))
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

    # --- the watchdog -------------------------------------------------------------------

    def watch(self, now: float) -> None:
        """Rebuild what died or went silent; start the connection attempts that are due."""
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

    def close(self) -> None:
        """Close every socket and abandon every connection attempt (the feed is stopping)."""
        for shard in self.shards:
            if shard.candidate is not None:
                shard.candidate.close()
            self._teardown(shard)

    def _schedule_reconnect(self, shard: Shard, now: float, why: str) -> None:
        if shard.socket is not None and shard.last_message_at - shard.connected_at >= self.settings.backoff_reset_after:
            # The connection that ended delivered for a while: start again from the shortest delay. One that
            # fails sooner keeps backing off, so that a server that accepts and drops is not hammered (docs/feed.md).
            shard.attempts = 0
        self._teardown(shard)
        delay = backoff_delay(shard.attempts, initial=self.settings.backoff_initial, maximum=self.settings.backoff_max)
        shard.attempts += 1
        shard.next_attempt_at = now + delay
        self._reconnects += 1
        self.log.warning(
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
            self.snapshots.put(topic[len(TOPIC_PREFIX) :], Snapshot(data, ts, now_ms()))
            shard.messages += 1
            if ts > shard.newest_ts:
                shard.newest_ts = ts
            shard.last_message_at = time.monotonic()
            return
        if frame.get("type") == "COMMAND_RESP":
            self._on_command_reply(shard, frame)
            return
        shard.bad_frames += 1
        self.log.warning("unknown-frame", "unknown frame: %.200s", orjson.dumps(frame).decode(), asset=self.asset)

    def _on_bad_frame(self, shard: Shard, why: str) -> None:
        shard.bad_frames += 1
        self.log.warning("bad-frame", "rejected a frame: %s", why, asset=self.asset)

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
            self.log.warning(
                "fail-topics", "Bybit refused %d topic(s), e.g. %s", len(failed), failed[:3], asset=self.asset
            )
