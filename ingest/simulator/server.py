"""The simulator's network side: one aiohttp server for REST, the option WebSocket and the controls.

Routes:

* ``GET /v5/market/instruments-info``, ``GET /v5/market/tickers``, ``GET /v5/market/time`` (Bybit v5).
* ``GET /v5/public/option`` — the public option WebSocket.
* ``POST /sim/control/<action>`` (JSON body), ``GET /sim/state``, ``GET /sim/symbols?baseCoin=BTC`` — not
  Bybit: how tests, the demo and the benchmarks fault and inspect a running simulator.

Ticker pushes bypass aiohttp's frame writer: each contract's frame is pre-encoded (see ``frames``),
a push glues sequence number and timestamp in and writes one batch per connection to the transport.
Replies (COMMAND_RESP, pongs) go the same way, so they stay in order with the pushes.

Pushes to a reader that falls behind are queued, and the reader is dropped once the oldest waiting one is
``max_backlog_seconds`` old; ``--slow-reader skip`` skips pushes to it instead (docs/simulator.md,
"A reader that falls behind").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote

import orjson
from aiohttp import WSMsgType, web

from ingest.simulator import frames
from ingest.simulator.config import SimulatorConfig
from ingest.simulator.faults import Faults
from ingest.simulator.market import Market, contract_sort_key
from ingest.symbols import SymbolError, parse_expiry_code, parse_symbol

logger = logging.getLogger("ingest.simulator")

WS_PATH = "/v5/public/option"
# Bybit's "params error" code; the texts are the simulator's own (the real ones are UNCONFIRMED).
PARAMS_ERROR = 10001
SERVER_ERROR = 10016
INSTRUMENTS_LIMIT_DEFAULT = 500
INSTRUMENTS_LIMIT_MAX = 1000
VALID_STATUSES = ("PreLaunch", "Trading", "Delivering", "Closed")
# Unlimited bench pushes: top the socket buffer up to this many bytes, then wait for it to drain.
UNLIMITED_HIGH_WATER = 512 * 1024


class ControlError(ValueError):
    """A control request the simulator cannot carry out; the message says why."""


class Connection:
    """One option WebSocket client: its subscriptions, counters, push task and the age of its backlog."""

    __slots__ = (
        "_symbols",
        "_writes",
        "bytes_written",
        "closing",
        "conn_id",
        "control_pings",
        "json_pings",
        "opened",
        "peer",
        "push_task",
        "pushes_stalled_until",
        "rounds",
        "sent",
        "skipped",
        "slow_reader_disconnects",
        "tickers",
        "topics",
        "trade_bases",
        "transport",
        "ws",
    )

    def __init__(self, *, conn_id: str, ws: web.WebSocketResponse, transport: asyncio.Transport, peer: str) -> None:
        self.conn_id = conn_id
        self.ws = ws
        self.transport = transport
        self.peer = peer
        self.topics: set[str] = set()
        self.tickers: dict[str, None] = {}
        self.trade_bases: set[str] = set()
        self.sent = 0
        self.skipped = 0
        self.slow_reader_disconnects = 0
        self.json_pings = 0
        self.control_pings = 0
        self.rounds = 0
        self.closing = False
        self.opened = time.time()
        self.push_task: asyncio.Task[None] | None = None
        self.pushes_stalled_until = 0.0  # time.monotonic(): no ticker pushes before it (pings still answered)
        self._symbols: list[str] | None = None
        self.bytes_written = 0
        # (bytes written up to the end of a write, time.monotonic() of it) for each write that had to
        # wait in the buffer: the oldest one the reader has not taken gives the age of the backlog.
        self._writes: deque[tuple[int, float]] = deque()

    def ticker_symbols(self) -> list[str]:
        if self._symbols is None:
            self._symbols = list(self.tickers)
        return self._symbols

    def subscriptions_changed(self) -> None:
        self._symbols = None

    def writable(self) -> bool:
        return not self.closing and not self.transport.is_closing()

    def write(self, payload: bytes) -> bool:
        if not self.writable():
            return False
        self.write_raw(frames.text_frame(payload))
        return True

    def write_raw(self, data: bytes) -> None:
        """Write encoded frames to the transport, noting when if they have to wait (:meth:`backlog_seconds`)."""
        transport = self.transport
        transport.write(data)
        self.bytes_written += len(data)
        buffered = transport.get_write_buffer_size()
        if buffered:
            self._forget_taken(buffered)
            self._writes.append((self.bytes_written, time.monotonic()))
        else:
            self._writes.clear()

    def backlog_seconds(self) -> float:
        """How long ago the oldest byte still waiting in our write buffer was written; 0 when it is empty.

        The kernel's socket buffers hold some more that the reader has not taken; that part is not seen.
        """
        self._forget_taken(self.transport.get_write_buffer_size())
        return time.monotonic() - self._writes[0][1] if self._writes else 0.0

    def _forget_taken(self, buffered: int) -> None:
        taken = self.bytes_written - buffered
        writes = self._writes
        while writes and writes[0][0] <= taken:
            writes.popleft()

    def as_dict(self) -> dict[str, Any]:
        return {
            "conn_id": self.conn_id,
            "peer": self.peer,
            "topics": len(self.topics),
            "tickers": len(self.tickers),
            "trade_topics": len(self.trade_bases),
            "messages_sent": self.sent,
            "messages_skipped": self.skipped,
            "backlog_seconds": round(self.backlog_seconds(), 3),
            "write_buffer_bytes": self.transport.get_write_buffer_size(),
            "slow_reader_disconnects": self.slow_reader_disconnects,
            "json_pings": self.json_pings,
            "control_pings": self.control_pings,
            "opened": self.opened,
        }


def reset_transport(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP RST (SO_LINGER 0), no close frame: what a dropped exchange connection looks like."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()


class _ResetOnConnect(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        reset_transport(transport)


class _GatedSite(web.BaseSite):
    """A TCP site that can refuse new connections (accept, then RST before any HTTP) while a fault is on."""

    def __init__(self, runner: web.BaseRunner, *, host: str, port: int, refusing: Callable[[], bool]) -> None:
        super().__init__(runner, backlog=1024)
        self._host = host
        self._port = port
        self._refusing = refusing
        self.bound_port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.bound_port}"

    async def start(self) -> None:
        await super().start()
        handler_factory = self._runner.server
        assert handler_factory is not None

        def protocol() -> asyncio.Protocol:
            if self._refusing():
                return _ResetOnConnect()
            return handler_factory()

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, reuse_address=True, backlog=self._backlog
        )
        self.bound_port = self._server.sockets[0].getsockname()[1]


def public_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


class SimulatorServer:
    """The simulator: market, faults and the aiohttp application, run on one event loop."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.market = Market(config=config)
        self.faults = Faults(config=config)
        self.connections: dict[str, Connection] = {}
        self.seq = frames.SEQ_START
        self.messages_sent = 0
        self.replies_sent = 0
        self.frames_skipped = 0
        self.slow_reader_disconnects = 0
        self.rest_requests = 0
        self.rest_rejected = 0
        self.connections_opened = 0
        self._rest_hits: dict[str, deque[float]] = {}
        self._conn_counter = itertools.count(1)
        self._conn_prefix = os.urandom(8).hex()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing_tasks: set[asyncio.Task[Any]] = set()
        self._next_delivery = self.market.next_delivery()
        self._runner: web.AppRunner | None = None
        self._site: _GatedSite | None = None
        self.app = self._build_app()

    # --- lifecycle ----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._site is None:
            raise RuntimeError("the simulator is not started")
        return self._site.bound_port

    @property
    def rest_url(self) -> str:
        return f"http://{public_host(self.config.host)}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{public_host(self.config.host)}:{self.port}{WS_PATH}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = _GatedSite(self._runner, host=self.config.host, port=self.config.port, refusing=self._refusing_tcp)
        await self._site.start()
        self._tasks = [
            asyncio.create_task(self._reprice_loop(), name="sim-reprice"),
            asyncio.create_task(self._clock_loop(), name="sim-clock"),
            asyncio.create_task(self._fault_loop(), name="sim-faults"),
        ]
        counts = ", ".join(f"{base} {len(book.ordered)}" for base, book in self.market.books.items())
        logger.info(
            "simulator started: %s contracts (%s), sim time %s, speed %g, %s mode",
            sum(len(book.ordered) for book in self.market.books.values()),
            counts,
            self.market.clock.now().isoformat(timespec="seconds"),
            self.market.clock.speed,
            "bench" if self.config.bench else "normal",
        )

    def _refusing_tcp(self) -> bool:
        return self.faults.refuse_mode == "reset" and self.faults.refusing()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for conn in list(self.connections.values()):
            conn.closing = True
            reset_transport(conn.transport)
        if self._runner is not None:
            await self._runner.cleanup()

    # --- background work ----------------------------------------------------------------------------

    async def _reprice_loop(self) -> None:
        hz = self.config.effective_reprice_hz
        if hz <= 0:
            return
        while True:
            await asyncio.sleep(1.0 / hz)
            # One base coin at a time, so pushes are not held up by a whole-market re-pricing.
            for base in list(self.market.books):
                trades = self.market.reprice([base])
                if trades:
                    self._publish_trades(base, [trade.data for trade in trades])
                await asyncio.sleep(0)

    async def _clock_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if self.market.clock.now() >= self._next_delivery:
                self.roll()

    async def _fault_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_drop = last_close = loop.time()
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            if self.faults.drop_every <= 0:
                last_drop = now
            elif now - last_drop >= self.faults.drop_every:
                last_drop = now
                self.drop_connections()
            if self.faults.close_every <= 0:
                last_close = now
            elif now - last_close >= self.faults.close_every:
                last_close = now
                self.close_connections(code=self.faults.close_code, reason="simulator: scheduled close")

    def _keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a reference to a fire-and-forget task until it is done (asyncio keeps only weak ones)."""
        self._closing_tasks.add(task)
        task.add_done_callback(self._closing_tasks.discard)

    def roll(self) -> dict[str, Any]:
        """Deliver and list as the simulated clock says; delivered topics stay subscribed but go silent."""
        report = self.market.roll()
        self._next_delivery = self.market.next_delivery()
        if report.delivered or report.listed:
            logger.info(
                "sim time %s: %d contracts delivered, %d listed",
                report.sim_time.isoformat(timespec="seconds"),
                len(report.delivered),
                len(report.listed),
            )
        return report.as_dict()

    # --- application --------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._rest_middleware], client_max_size=64 * 1024)
        app.router.add_get("/v5/market/instruments-info", self._instruments_info)
        app.router.add_get("/v5/market/tickers", self._tickers)
        app.router.add_get("/v5/market/time", self._time)
        app.router.add_get(WS_PATH, self._websocket)
        app.router.add_post("/sim/control/{action}", self._control_route)
        app.router.add_get("/sim/state", self._state_route)
        app.router.add_get("/sim/symbols", self._symbols_route)
        return app

    @web.middleware
    async def _rest_middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if not request.path.startswith("/v5/market/"):
            return await handler(request)
        self.rest_requests += 1
        if not self._rest_allowed(request.remote or "?"):
            self.rest_rejected += 1
            # Bybit's answer to a breached IP limit is a bare HTTP 403 (reference §4.4).
            return web.Response(status=403, text="403 Forbidden: access too frequent")
        if self.faults.rest_delay > 0:
            await asyncio.sleep(self.faults.rest_delay)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            logger.exception("REST handler failed for %s", request.path_qs)
            return _json(frames.rest_error(code=SERVER_ERROR, message="Internal server error"))

    def _rest_allowed(self, peer: str) -> bool:
        now = time.monotonic()
        hits = self._rest_hits.setdefault(peer, deque())
        while hits and hits[0] <= now - self.config.rest_rate_window:
            hits.popleft()
        if len(hits) >= self.config.rest_rate_limit:
            return False
        hits.append(now)
        return True

    # --- REST ---------------------------------------------------------------------------------------

    async def _instruments_info(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("category") != "option":
            return _params_error("Illegal category: this simulator serves category=option only")
        try:
            limit = _limit(query.get("limit"))
            cursor = query.get("cursor")
            cursor_key = _cursor_key(cursor) if cursor else None
        except ValueError as error:
            return _params_error(str(error))
        status = query.get("status")
        if status is not None and status not in VALID_STATUSES:
            return _params_error(f"params error: status must be one of {', '.join(VALID_STATUSES)}")
        symbol = query.get("symbol")
        if symbol:
            contract = self.market.contract(symbol)
            rows = [contract] if contract is not None else []
        else:
            # Bybit answers an option request without baseCoin with the BTC chain (reference §4.1).
            book = self.market.books.get(query.get("baseCoin", "BTC").upper())
            rows = book.ordered if book is not None else []
        if status is not None and status != "Trading":
            rows = []
        start = 0
        if cursor_key is not None:
            book_keys = [contract.sort_key for contract in rows]
            start = next((i for i, key in enumerate(book_keys) if key > cursor_key), len(rows))
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        next_cursor = _encode_cursor(page[0].symbol, page[-1].symbol) if page and more else ""
        result = {
            "category": "option",
            "nextPageCursor": next_cursor,
            "list": [self.market.instrument_row(contract) for contract in page],
        }
        return _json(frames.rest_ok(result))

    async def _tickers(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("category") != "option":
            return _params_error("Illegal category: this simulator serves category=option only")
        symbol = query.get("symbol")
        base = query.get("baseCoin")
        if not symbol and not base:
            return _params_error("params error: symbol or baseCoin must be passed for category=option")
        expiry = None
        if query.get("expDate"):
            try:
                expiry = parse_expiry_code(query["expDate"])
            except SymbolError:
                return _params_error("params error: expDate must look like 25DEC22")
        if symbol:
            contract = self.market.contract(symbol)
            if contract is None:
                return _params_error("params error: Not supported symbols")
            rows = [contract]
        else:
            book = self.market.books.get((base or "").upper())
            rows = list(book.ordered) if book is not None else []
        if expiry is not None:
            rows = [contract for contract in rows if contract.expiry == expiry]
        result = {"category": "option", "list": [self.market.rest_ticker(contract) for contract in rows]}
        return _json(frames.rest_ok(result))

    async def _time(self, request: web.Request) -> web.Response:
        # Wall-clock time, like the ts of every frame; the simulated clock only drives listing and delivery.
        nanos = time.time_ns()
        result = {"timeSecond": str(nanos // 1_000_000_000), "timeNano": str(nanos)}
        return _json(frames.rest_ok(result))

    # --- WebSocket ----------------------------------------------------------------------------------

    def _new_conn_id(self) -> str:
        # The shape of the DOCS sample: "aa01fbfffe80af37-00000001-000b37b9-7147f432704fd28c-00e1c172".
        number = next(self._conn_counter)
        return f"{self._conn_prefix}-{number:08x}-{os.getpid() & 0xFFFFFFFF:08x}-{os.urandom(8).hex()}-00e1c172"

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.faults.refusing() and self.faults.refuse_mode == "http503":
            return web.Response(status=503, text="simulator: refusing new connections")
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1024 * 1024, timeout=2.0)
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        conn = Connection(conn_id=self._new_conn_id(), ws=ws, transport=transport, peer=request.remote or "?")
        self.connections[conn.conn_id] = conn
        self.connections_opened += 1
        conn.push_task = asyncio.create_task(self._push_loop(conn), name=f"sim-push-{conn.conn_id[-12:]}")
        try:
            async for message in ws:
                if self.faults.stalled():
                    # A stalled exchange answers nothing; requests queue up and are served after the stall.
                    await self.faults.wait_unstalled()
                if message.type is WSMsgType.TEXT:
                    self._on_text(conn, message.data)
                elif message.type is WSMsgType.PING:
                    conn.control_pings += 1
                    if not self.faults.withholds_control_pong() and conn.writable():
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            await ws.pong(message.data)
                elif message.type is WSMsgType.BINARY:
                    self._reply(conn, frames.op_error(conn_id=conn.conn_id, op="", req_id=None, ret_msg="error:binary"))
                elif message.type is WSMsgType.ERROR:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conn.closing = True
            if conn.push_task is not None:
                conn.push_task.cancel()
            self.connections.pop(conn.conn_id, None)
        return ws

    def _reply(self, conn: Connection, payload: bytes) -> None:
        if conn.write(payload):
            self.replies_sent += 1

    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict):
            self._reply(conn, frames.op_error(conn_id=conn.conn_id, op="", req_id=None, ret_msg="error:invalid json"))
            return
        op = request.get("op")
        req_id = request.get("req_id")
        if op == "ping":
            conn.json_pings += 1
            if not self.faults.withholds_json_pong():
                conn_id = conn.conn_id if self.config.pong_conn_id else None
                self._reply(conn, frames.pong(ts_ms=frames.now_ms(), conn_id=conn_id, req_id=req_id))
            return
        if op not in ("subscribe", "unsubscribe"):
            message = f"error:handler not found,op:{op}"
            self._reply(conn, frames.op_error(conn_id=conn.conn_id, op=str(op or ""), req_id=req_id, ret_msg=message))
            return
        args = request.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(topic, str) for topic in args):
            message = "error:args must be a non-empty list of topics"
            self._reply(conn, frames.op_error(conn_id=conn.conn_id, op=op, req_id=req_id, ret_msg=message))
            return
        if op == "subscribe":
            self._subscribe(conn, args, req_id)
        else:
            self._unsubscribe(conn, args)

    def _classify(self, topic: str) -> tuple[str, str] | None:
        kind, _, rest = topic.partition(".")
        if kind == "tickers" and rest in self.market.by_symbol:
            return ("tickers", rest)
        if kind == "publicTrade" and rest in self.market.books:
            return ("publicTrade", rest)
        return None

    def _subscribe(self, conn: Connection, args: list[str], req_id: Any) -> None:
        chars = len(orjson.dumps(args))
        if chars > self.config.max_args_chars:
            self._reject(conn, args, req_id, f"args length {chars} >{self.config.max_args_chars}")
            return
        accepted: list[str] = []
        failed: list[str] = []
        new: list[tuple[str, tuple[str, str]]] = []
        for topic in dict.fromkeys(args):
            target = self._classify(topic)
            if target is None:
                failed.append(topic)
            elif topic in conn.topics:
                (failed if self.config.duplicate_topic_fails else accepted).append(topic)
            else:
                new.append((topic, target))
                accepted.append(topic)
        if len(conn.topics) + len(new) > self.config.max_topics_per_connection:
            self._reject(conn, args, req_id, f"args size >{self.config.max_topics_per_connection}")
            return
        for topic, (kind, name) in new:
            conn.topics.add(topic)
            if kind == "tickers":
                conn.tickers[name] = None
            else:
                conn.trade_bases.add(name)
        conn.subscriptions_changed()
        ret_msg = None
        if failed and self.config.fail_reply_ret_msg:
            ret_msg = f"Invalid symbol :[{','.join(failed)}]"
        self._reply(
            conn,
            frames.command_resp(conn_id=conn.conn_id, success_topics=accepted, fail_topics=failed, ret_msg=ret_msg),
        )

    def _reject(self, conn: Connection, args: list[str], req_id: Any, reason: str) -> None:
        """Refuse a whole subscribe request that breaks a limit, in the configured shape (UNCONFIRMED)."""
        shape = self.config.over_limit_reply
        if shape == "close":
            conn.closing = True
            self._keep(asyncio.get_running_loop().create_task(conn.ws.close(code=1008, message=reason.encode())))
            return
        if shape == "ret_msg":
            payload = frames.op_error(conn_id=conn.conn_id, op="subscribe", req_id=req_id, ret_msg=reason)
        else:
            ret_msg = reason if self.config.fail_reply_ret_msg else None
            payload = frames.command_resp(conn_id=conn.conn_id, success_topics=[], fail_topics=args, ret_msg=ret_msg)
        self._reply(conn, payload)

    def _unsubscribe(self, conn: Connection, args: list[str]) -> None:
        accepted: list[str] = []
        failed: list[str] = []
        for topic in dict.fromkeys(args):
            if topic not in conn.topics:
                failed.append(topic)
                continue
            conn.topics.discard(topic)
            kind, _, target = topic.partition(".")
            if kind == "tickers":
                conn.tickers.pop(target, None)
            else:
                conn.trade_bases.discard(target)
            accepted.append(topic)
        conn.subscriptions_changed()
        # The option socket confirms an unsubscribe with COMMAND_RESP too (reference §1.2).
        self._reply(conn, frames.command_resp(conn_id=conn.conn_id, success_topics=accepted, fail_topics=failed))

    async def _push_loop(self, conn: Connection) -> None:
        """Push every subscribed ticker ``rate_hz`` times a second, spread over ``push_slices`` slots.

        With a rate, pushes to a reader that falls behind are queued until its backlog is too old and it
        is dropped, or skipped while its buffer is full (``slow_reader``). Unlimited bench pushes wait for
        the socket instead, so neither applies to them.
        """
        loop = asyncio.get_running_loop()
        slices = self.config.push_slices
        rate = self.config.rate_hz
        interval = 1.0 / (rate * slices) if rate > 0 else 0.0
        drops_slow_readers = interval > 0 and self.config.slow_reader == "disconnect"
        transport = conn.transport
        next_at = loop.time()
        slot = 0
        try:
            while conn.writable():
                if interval:
                    next_at += interval
                    delay = next_at - loop.time()
                    if delay < -1.0:
                        # Fell far behind (the loop was blocked): carry on from now rather than burst.
                        next_at = loop.time()
                    await asyncio.sleep(max(delay, 0.0))
                elif transport.get_write_buffer_size() > UNLIMITED_HIGH_WATER:
                    await asyncio.sleep(0.0005)
                    continue
                else:
                    await asyncio.sleep(0)
                if not conn.writable() or self.faults.stalled() or time.monotonic() < conn.pushes_stalled_until:
                    continue
                if drops_slow_readers and self._drop_if_too_far_behind(conn):
                    return
                symbols = conn.ticker_symbols()
                if not symbols:
                    continue
                batch = symbols[slot::slices] if slices > 1 else symbols
                slot = (slot + 1) % slices
                if slot == 0:
                    conn.rounds += 1
                if not drops_slow_readers and transport.get_write_buffer_size() > self.config.max_write_buffer:
                    # Skip mode: a reader that cannot keep up misses pushes instead of growing our memory.
                    conn.skipped += len(batch)
                    self.frames_skipped += len(batch)
                    continue
                self._write_tickers(conn, batch)
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("push loop of %s failed", conn.conn_id)

    def _drop_if_too_far_behind(self, conn: Connection) -> bool:
        """Reset a connection whose backlog is older than ``max_backlog_seconds``; say whether it was."""
        backlog = conn.backlog_seconds()
        if backlog <= self.config.max_backlog_seconds:
            return False
        conn.closing = True
        conn.slow_reader_disconnects += 1
        self.slow_reader_disconnects += 1
        logger.warning(
            "slow reader %s: %.1f s behind with %d bytes buffered, disconnected",
            conn.conn_id,
            backlog,
            conn.transport.get_write_buffer_size(),
        )
        # No close frame: it would wait behind the backlog the reader is not reading.
        reset_transport(conn.transport)
        return True

    def _write_tickers(self, conn: Connection, symbols: list[str]) -> None:
        contracts = self.market.by_symbol
        # Stamped when written, not when taken: a queued frame carries the time the exchange produced it,
        # so a reader's ts-to-received lag shows its backlog.
        ts = b"%d" % frames.now_ms()
        parts: list[bytes] = []
        seq = self.seq
        variant = conn.rounds
        malformed_rate = self.faults.malformed_rate
        chance = self.faults.rng.random
        count = 0
        for symbol in symbols:
            contract = contracts.get(symbol)
            if contract is None:
                continue
            seq += 1
            count += 1
            if malformed_rate and chance() < malformed_rate:
                payload = self.faults.malformed_payload(symbol=symbol, fields=contract.fields, seq=seq, ts_ms=int(ts))
                parts.append(frames.text_frame(payload))
                continue
            versions = contract.frames
            prefix, middle, tail = versions[variant % len(versions)]
            parts += (prefix, b"%d" % seq, b"-", ts, middle, ts, tail)
        if seq > frames.SEQ_END:
            seq = frames.SEQ_START
        self.seq = seq
        if parts:
            conn.write_raw(b"".join(parts))
            conn.sent += count
            self.messages_sent += count

    def _publish_trades(self, base: str, trades: list[dict[str, Any]]) -> None:
        if self.faults.stalled():
            return
        for conn in self.connections.values():
            if base in conn.trade_bases and conn.writable():
                self.seq += 1
                conn.write(frames.trade_message(base=base, seq=self.seq, ts_ms=frames.now_ms(), trades=trades))
                conn.sent += 1
                self.messages_sent += 1

    # --- faults and state ---------------------------------------------------------------------------

    def drop_connections(self) -> int:
        """TCP-reset every WebSocket now, without a close frame."""
        dropped = 0
        for conn in list(self.connections.values()):
            if not conn.closing:
                conn.closing = True
                reset_transport(conn.transport)
                dropped += 1
        if dropped:
            logger.info("fault: dropped %d connections", dropped)
        return dropped

    def stall_pushes(self, *, seconds: float, connections: int) -> list[str]:
        """Stop the ticker pushes of the ``connections`` oldest open sockets for ``seconds``; they still answer
        pings and requests, so a client's heartbeat sees nothing wrong. Returns their ids."""
        until = time.monotonic() + seconds
        chosen = [conn for conn in self.connections.values() if conn.writable()][: max(connections, 0)]
        for conn in chosen:
            conn.pushes_stalled_until = until
        if chosen:
            logger.info("fault: ticker pushes of %d connections stalled for %.1f s", len(chosen), seconds)
        return [conn.conn_id for conn in chosen]

    def close_connections(self, *, code: int = 1000, reason: str = "") -> int:
        """Send a close frame to every WebSocket (the close handshake finishes in the background)."""
        closed = 0
        loop = asyncio.get_running_loop()
        for conn in list(self.connections.values()):
            if not conn.closing:
                conn.closing = True
                self._keep(loop.create_task(conn.ws.close(code=code, message=reason.encode())))
                closed += 1
        if closed:
            logger.info("fault: sent close frames (%d) to %d connections", code, closed)
        return closed

    def advance_to_next_delivery(self) -> dict[str, Any]:
        """Jump the simulated clock to one second past the next 08:00 UTC, then deliver and list."""
        target = self.market.next_delivery()
        self.market.clock.jump_to(sim_ts=target.timestamp() + 1.0)
        report = self.roll()
        self.market.reprice()
        return report

    async def control(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Carry out one control action (the same for ``POST /sim/control/<action>`` and the thread runner)."""
        faults = self.faults
        try:
            if action == "drop":
                return {"dropped": self.drop_connections()}
            if action == "close":
                code = int(body.get("code", faults.close_code))
                return {"closed": self.close_connections(code=code, reason=str(body.get("reason", "")))}
            if action == "refuse":
                faults.refuse_for(float(body["seconds"]))
                return {"refusing_for": float(body["seconds"]), "mode": faults.refuse_mode}
            if action == "stall":
                faults.stall_for(float(body["seconds"]))
                return {"stalled_for": float(body["seconds"])}
            if action == "stall_pushes":
                connections = int(body.get("connections", 1))
                return {"stalled": self.stall_pushes(seconds=_seconds(body), connections=connections)}
            if action == "withhold_pongs":
                faults.set_withhold_pongs(enabled=bool(body.get("enabled", True)), kind=body.get("kind"))
                return {"withhold_pongs": faults.withhold_pongs, "kind": faults.withhold_pong_kind}
            if action == "malformed":
                faults.set_malformed(rate=float(body["rate"]), kinds=body.get("kinds"))
                return {"malformed_rate": faults.malformed_rate, "kinds": list(faults.malformed_kinds)}
            if action == "rest_delay":
                faults.rest_delay = _seconds(body)
                return {"rest_delay": faults.rest_delay}
            if action == "drop_every":
                faults.drop_every = _seconds(body)
                return {"drop_every": faults.drop_every}
            if action == "close_every":
                faults.close_every = _seconds(body)
                if "code" in body:
                    faults.close_code = int(body["code"])
                return {"close_every": faults.close_every, "code": faults.close_code}
            if action == "clear":
                faults.clear()
                return {"faults": faults.as_dict()}
            if action == "advance":
                return self.advance_to_next_delivery()
            if action == "speed":
                self.market.clock.set_speed(float(body["speed"]))
                return {"speed": self.market.clock.speed}
        except (KeyError, TypeError, ValueError) as error:
            raise ControlError(f"{action}: bad body {dict(body)!r} ({error!r})") from None
        raise ControlError(f"unknown action {action!r}; known: {', '.join(CONTROL_ACTIONS)}")

    def state(self) -> dict[str, Any]:
        clock = self.market.clock
        return {
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "sim_time": clock.now().isoformat(),
            "next_delivery": self._next_delivery.isoformat(),
            "speed": clock.speed,
            "bench": self.config.bench,
            "rate_hz": self.config.rate_hz,
            "open_connections": len(self.connections),
            "connections_opened": self.connections_opened,
            "connections": [conn.as_dict() for conn in self.connections.values()],
            "messages_sent": self.messages_sent,
            "replies_sent": self.replies_sent,
            "messages_skipped": self.frames_skipped,
            "slow_reader": self.config.slow_reader,
            "slow_reader_disconnects": self.slow_reader_disconnects,
            "rest_requests": self.rest_requests,
            "rest_rejected": self.rest_rejected,
            "live_symbols": {base: len(book.ordered) for base, book in self.market.books.items()},
            "universe_version": self.market.version,
            "faults": self.faults.as_dict(),
        }

    async def _control_route(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            result = await self.control(request.match_info["action"], body)
        except ControlError as error:
            return web.json_response({"error": str(error)}, status=400)
        return _json(orjson.dumps(result))

    async def _state_route(self, request: web.Request) -> web.Response:
        return _json(orjson.dumps(self.state()))

    async def _symbols_route(self, request: web.Request) -> web.Response:
        base = request.query.get("baseCoin", "BTC").upper()
        return _json(orjson.dumps({"baseCoin": base, "symbols": self.market.live_symbols(base)}))


CONTROL_ACTIONS = (
    "drop",
    "close",
    "refuse",
    "stall",
    "withhold_pongs",
    "malformed",
    "rest_delay",
    "drop_every",
    "close_every",
    "clear",
    "advance",
    "speed",
)


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def _params_error(message: str) -> web.Response:
    # Bybit answers bad parameters with HTTP 200 and a non-zero retCode.
    return _json(frames.rest_error(code=PARAMS_ERROR, message=message))


def _seconds(body: Mapping[str, Any]) -> float:
    seconds = float(body["seconds"])
    if seconds < 0 or seconds != seconds:
        raise ValueError("seconds must be >= 0")
    return seconds


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return INSTRUMENTS_LIMIT_DEFAULT
    try:
        limit = int(text)
    except ValueError:
        raise ValueError(f"params error: limit must be an integer in [1, {INSTRUMENTS_LIMIT_MAX}]") from None
    if not 1 <= limit <= INSTRUMENTS_LIMIT_MAX:
        raise ValueError(f"params error: limit must be in [1, {INSTRUMENTS_LIMIT_MAX}]")
    return limit


def _encode_cursor(first: str, last: str) -> str:
    """Already URL-encoded, as Bybit's are: pybit puts GET params in the URL without encoding them."""
    return quote(f"first={first}&last={last}", safe="")


def _cursor_key(text: str) -> tuple[Any, ...]:
    """The sort key of the last row of the previous page; the next page starts after it."""
    # Decoded once by the server; a client that encoded the cursor again leaves one more layer.
    decoded = text
    for _ in range(3):
        if "%" not in decoded:
            break
        decoded = unquote(decoded)
    fields = dict(part.partition("=")[::2] for part in decoded.split("&"))
    try:
        return contract_sort_key(parse_symbol(fields.get("last", "")))
    except SymbolError:
        raise ValueError("params error: cursor is invalid") from None
