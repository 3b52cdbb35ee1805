"""The live chain of one asset over a WebSocket: ``/ws/chain/<ASSET>/`` (protocol: docs/websocket.md)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import redis
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from chain.flow_control import Delivery
from chain.live_chain import (
    ChainEvent,
    asset_state,
    read_analytics,
    read_expiries,
    read_live_chain,
    read_live_chain_after,
    rows_in_view,
    view_analytics_field,
)
from chain.messages import (
    CLOSE_DISABLED_ASSET,
    CLOSE_UNKNOWN_ASSET,
    BadMessage,
    ChainView,
    ServerFrame,
    SnapshotReason,
    build_analytics,
    build_error,
    build_instruments,
    build_snapshot,
    build_status,
    encode_frame,
    encode_update,
    parse_client_message,
    row_chunks,
    view_from_query,
    written_rows,
)
from chain.updates import update_rows_json
from ingest.events import ChainAnalytics, ChainInstruments, ChainStatus, ChainUpdate
from ingest.keys import chain_group
from ingest.throttled_log import RateLimitedLog
from optionsite.clock import now_ms
from optionsite.write_buffer import buffered_bytes_counter

WHOLE_CHAIN: ChainView = {"expiry": None, "settle": None}

# Redis is unreachable: the server cannot serve the connection for now; reconnect later. An application
# code (as 4403/4404: HTTP's status + 4000) because daphne's autobahn refuses to send RFC 6455's 1013
# "Try Again Later" ("invalid close code 1013"). Before the handshake is accepted, closing refuses it
# instead (daphne answers 403), and the page's reconnect backs off (docs/websocket.md, "Redis unreachable").
CLOSE_REDIS_UNAVAILABLE = 4503

# channels-redis forgets a group member that joined more than the layer's ``group_expiry`` ago (24 h
# by default) at the next ``group_send``: each connection re-joins this many times per expiry.
MEMBERSHIP_RENEWALS_PER_EXPIRY = 3

# Every connection of a process meets the same outage: one line per 10 s says so, with a count.
outage_log = RateLimitedLog(logging.getLogger(__name__))


@functools.cache
def warn_write_buffer_uncounted() -> None:
    """Once per process: under a server that does not count what it buffers, a client that acknowledges
    without reading can grow the process without bound."""
    logging.getLogger(__name__).warning(
        "the server does not report its WebSocket write buffers (run it with python -m optionsite.webserver): "
        "only the clients' acknowledgements bound what they are sent"
    )


class ChainConsumer(AsyncWebsocketConsumer):
    """Joins the group ``chain.<ASSET>`` the ingest sends to, and forwards its events in the client's view."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asset = ""
        self.group = ""
        self.view = WHOLE_CHAIN
        self.membership_renewal: asyncio.Task[None] | None = None

    @functools.cached_property
    def delivery(self) -> Delivery:
        """Made at first use, once the scope is known: the server's count of what this connection holds in
        its write buffer comes with it (``optionsite.write_buffer``)."""
        buffered_bytes = buffered_bytes_counter(self.scope)
        if buffered_bytes is None:
            warn_write_buffer_uncounted()
        return Delivery(buffered_bytes=buffered_bytes)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its ``aclose_old_connections()`` before every message: a hop to a thread
        per message and connection (14 % of a web process's time fanning updates out to 100 viewers). This
        consumer reaches the database only through ``database_sync_to_async`` (``chain.live_chain``), which closes
        outdated connections itself, on the thread that holds them."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The connection's whole life. Redis unreachable at any point of it (the channel layer's wait
        for events included) closes the connection with 4503 rather than ending in a traceback."""
        try:
            await super().__call__(scope, receive, send)
        except redis.RedisError as exc:
            outage_log.warning(
                "redis",
                "Redis is unreachable, closing with %d: %s",
                CLOSE_REDIS_UNAVAILABLE,
                exc,
                asset=self.asset or "-",
            )
            await self.close(code=CLOSE_REDIS_UNAVAILABLE)
        finally:
            self.stop_renewing_membership()
            # daphne cancels a consumer still running 10 s after its socket closed; cancelled, it would never
            # reach disconnect() and would stay in its group, sent every update for group_expiry.
            await asyncio.shield(self.leave_group())

    async def connect(self) -> None:
        asset = str(self.scope["url_route"]["kwargs"]["asset"]).strip().upper()
        state = await asset_state(asset)
        if state != "enabled":
            await self.accept()
            await self.close(code=CLOSE_UNKNOWN_ASSET if state == "unknown" else CLOSE_DISABLED_ASSET)
            return
        self.asset = asset
        problem: BadMessage | None = None
        try:
            self.view = view_from_query(self.scope.get("query_string", b""))
        except BadMessage as exc:
            self.view, problem = WHOLE_CHAIN, exc
        self.group = chain_group(asset)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.membership_renewal = asyncio.create_task(self.renew_membership())
        await self.accept()
        if problem is not None:
            await self.send_error(problem)
        await self.send_snapshot("connect")
        await self.send_latest_analytics()

    async def disconnect(self, code: int) -> None:
        self.stop_renewing_membership()
        await self.leave_group()

    async def leave_group(self) -> None:
        if self.group:
            group, self.group = self.group, ""
            # With Redis unreachable the membership lapses by itself after ``group_expiry``.
            with contextlib.suppress(redis.RedisError):
                await self.channel_layer.group_discard(group, self.channel_name)

    async def renew_membership(self) -> None:
        """Re-join the group a few times per ``group_expiry``, so that channels-redis never forgets
        a connection that stays open longer than that (docs/websocket.md, "Connections open for days")."""
        every = self.channel_layer.group_expiry / MEMBERSHIP_RENEWALS_PER_EXPIRY
        while True:
            await asyncio.sleep(every)
            try:
                await self.channel_layer.group_add(self.group, self.channel_name)
            except redis.RedisError as exc:
                # The wait for events fails too, and closes the connection; else the next renewal is in time.
                outage_log.warning("redis", "could not renew a group membership: %s", exc, asset=self.asset)

    def stop_renewing_membership(self) -> None:
        if self.membership_renewal is not None:
            self.membership_renewal.cancel()
            self.membership_renewal = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.asset:  # refused, and closing
            return
        if text_data is None:
            await self.send_error(BadMessage("binary frames are not understood; send JSON text"))
            return
        try:
            message = parse_client_message(text_data)
            if message["type"] == "ack":
                if self.delivery.acknowledge(message["seq"]):
                    await self.send_snapshot("resync")
                return
        except BadMessage as exc:
            await self.send_error(exc)
            return
        self.view = {"expiry": message["expiry"], "settle": message["settle"]}
        await self.send_snapshot("view")
        await self.send_latest_analytics()

    # --- events from the ingest (ingest.events) -------------------------------------

    async def chain_update(self, event: ChainUpdate) -> None:
        if await self.admitted(event):
            chunks = update_rows_json(event, self.view)  # shared with this process's other connections
            if chunks:  # else nothing in this client's view changed: nothing to send
                texts = [
                    encode_update(seq=self.delivery.next_seq(), asset=self.asset, rows_json=chunk, ts=event["ts"])
                    for chunk in chunks
                ]
                await self.send_texts(texts, last_seq=self.delivery.seq)

    async def chain_instruments(self, event: ChainInstruments) -> None:
        if await self.admitted(event):
            expiries = await read_expiries(asset=self.asset)
            chunks = row_chunks(rows_in_view(event["listed"], self.view))
            await self.send_message(
                [
                    build_instruments(
                        seq=self.delivery.next_seq(),
                        asset=self.asset,
                        listed=listed,
                        delivered=event["delivered"] if number == 0 else [],
                        expiries=expiries,
                        ts=event["ts"],
                    )
                    for number, listed in enumerate(chunks)
                ]
            )

    async def chain_status(self, event: ChainStatus) -> None:
        if await self.admitted(event):
            await self.send_message(
                [build_status(seq=self.delivery.next_seq(), asset=self.asset, state=event["state"], ts=event["ts"])]
            )

    async def chain_analytics(self, event: ChainAnalytics) -> None:
        # New analytics replace these within a second: a connection that is behind skips them rather than
        # resyncing for them.
        if self.asset and self.delivery.has_room() and not self.delivery.resync_due:
            field_name = view_analytics_field(self.view, event["expiries"])
            expiry_json = event["expiries"].get(field_name) if field_name is not None else None
            await self.send_analytics(event["analytics"], expiry_json, ts=event["ts"])

    async def admitted(self, event: ChainEvent) -> bool:
        """Whether to forward an event from the ingest; sends the due snapshot instead if one is."""
        admission = self.delivery.admit(event_ts=event["ts"], now_ms=now_ms())
        if admission == "resync":
            await self.send_snapshot("resync", after=event)
        return admission == "forward"

    # --- sending --------------------------------------------------------------------

    async def send_snapshot(self, reason: SnapshotReason, *, after: ChainEvent | None = None) -> None:
        """The view as Redis has it now; ``after``: the event being handled, whose read others may share."""
        if not self.delivery.has_room():
            self.delivery.defer_snapshot()
            return
        if after is None:
            chain = await read_live_chain(asset=self.asset)
        else:
            chain = await read_live_chain_after(after, asset=self.asset)
        chunks = chain.rows.view_json(self.view)  # shared with this process's other snapshots of the revision
        await self.send_message(
            [
                build_snapshot(
                    seq=self.delivery.next_seq(),
                    asset=self.asset,
                    part=part,
                    parts=len(chunks),
                    reason=reason,
                    view=self.view,
                    expiries=chain.expiries,
                    feed=chain.feed,
                    rows=written_rows(rows_json),
                )
                for part, rows_json in enumerate(chunks, start=1)
            ]
        )
        self.delivery.snapshot_sent()

    async def send_latest_analytics(self) -> None:
        """After a snapshot: the analytics of its view as the feed last stored them, not a second later."""
        stored = await read_analytics(asset=self.asset, view=self.view)
        if stored is not None and self.delivery.has_room():
            await self.send_analytics(stored.asset_json, stored.expiry_json, ts=stored.ts)

    async def send_analytics(self, asset_json: bytes, expiry_json: bytes | None, *, ts: int) -> None:
        frame = build_analytics(
            seq=self.delivery.next_seq(), asset=self.asset, analytics_json=asset_json, expiry_json=expiry_json, ts=ts
        )
        await self.send_message([frame])

    async def send_error(self, problem: BadMessage) -> None:
        # A client that sends without reading must not fill the server's buffers with errors either.
        if self.delivery.has_room():
            await self.send_message(
                [build_error(seq=self.delivery.next_seq(), code=problem.code, message=str(problem))]
            )

    async def send_message(self, frames: list[ServerFrame]) -> None:
        await self.send_texts([encode_frame(frame) for frame in frames], last_seq=frames[-1]["seq"])

    async def send_texts(self, texts: list[str], *, last_seq: int) -> None:
        """Send one message's frames back to back; the client acknowledges the last one's ``seq``."""
        for text in texts:
            await self.send(text_data=text)
        self.delivery.sent(seq=last_seq)
