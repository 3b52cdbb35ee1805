"""A repeated anonymous read of an unchanged chain, answered without running Django again.

Scripts and dashboards ask for the same full chain over and over, most of them several
times per revision of it (the ingest writes every 250 ms). The rows of such an answer are
the same bytes for every one of those requests (``chain.rows.RowView``); what Django does
around them was most of the cost: its middleware, the view, DRF's negotiation, the thread
hop. Serving the full BTC chain, a web process spent 6.0 to 6.6 ms of CPU per request where bare
daphne serving the same bytes spent 0.8 (docs/benchmarks.md).

``AnswerCache`` sits in front of the HTTP handler. When the options view answers a plain
anonymous GET, it leaves a ``Replayable`` in the request's ASGI scope: the asset, the chain
revision and asset-configuration version the answer was made at, the rows, the format. The
cache keeps it with the response's status and headers as Django's middleware left them,
under the request's key: scheme, host, path, query string, ``Accept`` and the proxy's TLS
header (everything the middleware and the view decided on; a request with credentials or
cookies always runs Django). The next request with that key costs one Redis round-trip on
the event loop: it counts the request in the anonymous throttle exactly as
``AnonRedisRateThrottle`` would, and reads the asset version, the chain revision and the
feed status. If the request passes the throttle and both versions are those of the entry,
the answer is rebuilt from the entry's rows with this request's ``ts`` and feed state
(``chain.queries.options_answer``, the view's own function) and sent. Otherwise, or if Redis
fails, the request goes to Django, carrying its throttle count so that it is not counted
twice (``optionsite.throttling.PRECOUNTED``), and its answer replaces the entry. Requests that
find the chain moved while one of them is in Django for the same key wait for its answer and
replay it if it holds for the revision they read: after every flush, one render, not one
per request in flight.

An answer is therefore never older than the revision in Redis when its request was read,
and a disabled asset, a refused client or Redis down get what Django says. Entries also
expire after ``ASSET_STATES_MAX_AGE`` seconds, as the asset flags they rely on do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
from django.conf import settings
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from assets.events import assets_version_key
from chain.renderers import CSVRenderer, ORJSONRenderer, envelope_parts
from chain.rows import RowView
from ingest.keys import chain_revision_key, feed_status_key
from ingest.status import FeedStatus
from optionsite.clock import now_ms
from optionsite.redis_client import async_redis_connection
from optionsite.throttling import (
    PRECOUNTED,
    AnonRedisRateThrottle,
    address_from,
    client_key,
    window_commands,
    window_counts,
)

# Set by the options view in the request's scope when its answer may be replayed.
REPLAYABLE = "chain.replayable"
# Keys kept per process: each holds a view of one chain state, so a key no longer asked for should not keep
# old chains alive for long; stale entries are swept when one is stored.
MAX_ENTRIES = 64


@dataclass(frozen=True)
class Replayable:
    """An answer the cache may rebuild while ``revision`` and ``assets_version`` hold."""

    asset: str
    revision: bytes
    assets_version: int
    view: RowView
    format: str  # "json" or "csv"


@dataclass(frozen=True)
class Entry:
    replayable: Replayable
    headers: list[tuple[bytes, bytes]]  # Django's for its 200, without Content-Length
    stored_at: float  # time.monotonic()


@dataclass(frozen=True)
class ChainState:
    """What Redis says when a request comes: the chain's revision, the assets' version, the feed's status."""

    revision: bytes | None
    assets_version: int
    feed: FeedStatus | None

    def serves(self, entry: Entry) -> bool:
        kept = entry.replayable
        return self.revision == kept.revision and self.assets_version == kept.assets_version


@dataclass
class CacheFigures:
    """This process's cache, for ``/api/stats/``."""

    replayed: int = 0  # answered from an entry
    missed: int = 0  # an entry was there, but the chain or the assets had moved (or the throttle refused)


cache_figures = CacheFigures()


class AnswerCache:
    """ASGI middleware for HTTP: replays entries, stores what the options view marks (module docstring)."""

    def __init__(self, app: Any, *, max_entries: int = MAX_ENTRIES) -> None:
        self.app = app
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[Any, ...], Entry] = OrderedDict()
        self.figures = cache_figures
        # Per key, a request Django is answering: those that find the chain moved meanwhile wait for its answer.
        self._pending: dict[tuple[Any, ...], asyncio.Future[None]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        key = request_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        entry = self._entry(key)
        if entry is not None:
            state = await self._chain_state(entry.replayable.asset, scope)
            if state is not None and state.serves(entry):
                await self._replay(entry, state, send)
                return
            pending = self._pending.get(key)
            if state is not None and pending is not None:
                # The chain moved and a request for the same answer is in Django already: what it answers is
                # what this one would get (both read the chain after it moved).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pending), timeout=settings.HTTP_QUEUE_TIMEOUT)
                entry = self._entry(key)
                if entry is not None and state.serves(entry):
                    await self._replay(entry, state, send)
                    return
            self.figures.missed += 1
        await self._answered_by_django(key, scope, receive, send)

    def _entry(self, key: tuple[Any, ...]) -> Entry | None:
        entry = self.entries.get(key)
        return entry if entry is not None and time.monotonic() - entry.stored_at < _max_age() else None

    async def _chain_state(self, asset: str, scope: dict[str, Any]) -> ChainState | None:
        """Counts the request in the throttle and reads what an entry holds for: ``None`` if Django must answer
        (Redis failed, or the throttle refuses)."""
        throttle = AnonRedisRateThrottle()
        names = [] if throttle.rate is None else [throttle_name(throttle, scope)]
        now = time.time()
        commands = [
            *window_commands(names=names, duration=throttle.duration or 1, now=now),
            ("GET", assets_version_key()),
            ("GET", chain_revision_key(asset)),
            ("HGETALL", feed_status_key(asset)),
        ]
        try:
            replies = await self._execute(commands)
        except (redis.RedisError, OSError):
            return None  # Django answers, 503 if Redis stays down
        counted, (version, revision, raw_feed) = replies[:-3], replies[-3:]
        if names:
            (count,) = window_counts(counted, duration=throttle.duration, now=now)
            scope[PRECOUNTED] = count
            if count.weighed() > throttle.num_requests:
                return None  # Django answers 429, with this count
        if not isinstance(raw_feed, dict):  # a RESP2 reply read raw: [field, value, ...]
            raw_feed = dict(zip(raw_feed[0::2], raw_feed[1::2], strict=True))
        return ChainState(revision, int(version or 0), FeedStatus.from_redis(asset, raw_feed))

    async def _replay(self, entry: Entry, state: ChainState, send: Any) -> None:
        parts = answer_parts(entry.replayable, feed=state.feed)
        headers = [*entry.headers, (b"content-length", str(sum(map(len, parts))).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # In parts: the server copies them into its buffer once, instead of a join here and a copy there.
        for part in parts[:-1]:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": parts[-1]})
        self.figures.replayed += 1

    async def _answered_by_django(self, key: tuple[Any, ...], scope: dict[str, Any], receive: Any, send: Any) -> None:
        started: dict[str, Any] = {}

        async def watched_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            await send(message)

        pending = None if key in self._pending else asyncio.get_running_loop().create_future()
        if pending is not None:
            self._pending[key] = pending
        try:
            await self.app(scope, receive, watched_send)
        finally:
            if pending is not None:
                del self._pending[key]
                pending.set_result(None)
        replayable = scope.get(REPLAYABLE)
        if replayable is None or started.get("status") != 200:
            self.entries.pop(key, None)
            return
        headers = [(name, value) for name, value in started.get("headers", []) if name.lower() != b"content-length"]
        if any(name.lower() == b"set-cookie" for name, _ in headers):
            return
        self._store(key, Entry(replayable, headers, time.monotonic()))

    def _store(self, key: tuple[Any, ...], entry: Entry) -> None:
        oldest_kept = entry.stored_at - _max_age()
        for stale in [k for k, kept in self.entries.items() if kept.stored_at < oldest_kept]:
            del self.entries[stale]
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    async def _execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """``commands`` in one write and one read, as ``optionsite.redis_client.execute_packed`` does, on the
        event loop: a connection left mid-reply is dropped, never reused."""
        pool = async_redis_connection().connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(b"".join([hiredis.pack_command(command) for command in commands]))
            replies = [await connection.read_response() for _ in commands]
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return replies


def offer_replay(request: Request, *, asset: str, view: RowView, revision: bytes | None, assets_version: int) -> None:
    """Called by the options view: its answer may be replayed if it goes out as plain JSON or CSV over ASGI."""
    scope = getattr(request, "scope", None)  # an ASGI request's; the WSGI and test clients have none
    renderer = request.accepted_renderer
    if scope is None or revision is None or request.accepted_media_type != renderer.media_type:
        return  # e.g. "application/json; indent=2"
    formats: dict[type[BaseRenderer], str] = {ORJSONRenderer: "json", CSVRenderer: "csv"}
    answer_format = formats.get(type(renderer))
    if answer_format is not None:
        scope[REPLAYABLE] = Replayable(asset, revision, assets_version, view, answer_format)


def request_key(scope: dict[str, Any]) -> tuple[Any, ...] | None:
    """What the answer to an anonymous GET depends on, or ``None`` for a request the cache leaves to Django."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    raw_headers = scope.get("headers") or ()
    headers = dict(raw_headers)
    if b"authorization" in headers or b"cookie" in headers or len(headers) != len(raw_headers):
        return None  # credentials, or a header sent twice (Django would join them): Django decides
    proxy_value = None
    if settings.SECURE_PROXY_SSL_HEADER:  # ("HTTP_X_FORWARDED_PROTO", "https") names the header X-Forwarded-Proto
        meta_name = settings.SECURE_PROXY_SSL_HEADER[0]
        proxy_value = headers.get(meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode())
    return (
        scope.get("scheme"),
        headers.get(b"host"),
        scope["path"],
        scope.get("query_string", b""),
        headers.get(b"accept"),
        proxy_value,
    )


def throttle_name(throttle: AnonRedisRateThrottle, scope: dict[str, Any]) -> str:
    """The counter ``AnonRedisRateThrottle`` counts this request's client on."""
    headers = dict(scope.get("headers") or ())
    client = scope.get("client") or ("", 0)
    forwarded = headers.get(b"x-forwarded-for")
    address = address_from(remote=client[0], forwarded=forwarded.decode("latin-1") if forwarded else None)
    return throttle.counter_name(client_key(address))


def answer_parts(replayable: Replayable, *, feed: FeedStatus | None) -> list[bytes]:
    """The answer the view gives for these rows, with this moment's ``ts`` and feed state, in parts."""
    if replayable.format == "csv":
        return [replayable.view.csv()]
    from chain.queries import options_answer  # chain.queries counts this module's figures

    answer = options_answer(asset=replayable.asset, view=replayable.view, feed=feed, now_ms=now_ms())
    return envelope_parts(answer) or [ORJSONRenderer().render(answer)]


def _max_age() -> float:
    from chain.queries import ASSET_STATES_MAX_AGE  # as above

    return ASSET_STATES_MAX_AGE
