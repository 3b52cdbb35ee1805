"""A reader that falls behind: its pushes queue until it is dropped (the default) or are skipped (``skip``).

Real sockets throughout: a websocket-client connection subscribes 300 tickers at 20 pushes a second
(about 5 MB/s) and then reads, pauses or stops reading. The kernel's socket buffers take the first few
megabytes, so the simulator's own buffer, and with it the backlog, starts growing about a second after a
reader stops.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from ingest.simulator import RunningSimulator, SimulatorConfig
from ingest.simulator.config import config_to_argv, parse_cli

TICKERS = 300
RATE_HZ = 20.0
MAX_BACKLOG_SECONDS = 1.0
# Far below what queues up for a stopped reader, so a simulator that skipped instead would show it.
SMALL_WRITE_BUFFER = 64 * 1024


def start_pushing(start_simulator: Callable[..., RunningSimulator], **changes: Any) -> RunningSimulator:
    changes = {"rate_hz": RATE_HZ, "max_backlog_seconds": MAX_BACKLOG_SECONDS, **changes}
    return start_simulator(assets=("BTC",), max_write_buffer=SMALL_WRITE_BUFFER, **changes)


@pytest.fixture
def subscribed_reader() -> Iterator[Callable[..., websocket.WebSocket]]:
    sockets: list[websocket.WebSocket] = []

    def connect(simulator: RunningSimulator, *, receive_buffer: int | None = None) -> websocket.WebSocket:
        """A connection subscribed to the first ``TICKERS`` BTC tickers that has read its first pushes."""
        options = ((socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer),) if receive_buffer else ()
        ws = websocket.create_connection(simulator.ws_url, timeout=5, sockopt=options)
        sockets.append(ws)
        topics = [f"tickers.{symbol}" for symbol in simulator.live_symbols("BTC")[:TICKERS]]
        ws.send(json.dumps({"op": "subscribe", "args": topics}))
        assert json.loads(ws.recv())["success"] is True
        for _ in range(20):
            assert "topic" in json.loads(ws.recv())
        return ws

    yield connect
    for ws in sockets:
        with contextlib.suppress(Exception):
            ws.close(timeout=0.5)


class Watch:
    """The simulator's state, sampled until a condition holds: the largest backlog and buffer seen on the way."""

    def __init__(self, simulator: RunningSimulator) -> None:
        self.simulator = simulator
        self.max_backlog_seconds = 0.0
        self.max_write_buffer_bytes = 0

    def until(self, condition: Callable[[dict[str, Any]], bool], *, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.simulator.state()
            for conn in state["connections"]:
                self.max_backlog_seconds = max(self.max_backlog_seconds, conn["backlog_seconds"])
                self.max_write_buffer_bytes = max(self.max_write_buffer_bytes, conn["write_buffer_bytes"])
            if condition(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout} s; last state: {state}")
            time.sleep(0.02)

    def for_seconds(self, seconds: float) -> dict[str, Any]:
        ends = time.monotonic() + seconds
        return self.until(lambda state: time.monotonic() > ends, timeout=seconds + 5)


def read_until_it_fails(ws: websocket.WebSocket, *, timeout: float) -> BaseException:
    ws.settimeout(timeout)
    try:
        while True:
            ws.recv()
    except websocket.WebSocketTimeoutException:
        raise AssertionError(f"the socket was still open, silent for {timeout} s") from None
    except (OSError, websocket.WebSocketException) as error:
        return error


def ts_ms(frame: str | bytes) -> int:
    return int(json.loads(frame)["ts"])


def test_it_disconnects_a_reader_whose_backlog_grows_past_the_bound(
    start_simulator: Callable[..., RunningSimulator],
    subscribed_reader: Callable[..., websocket.WebSocket],
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator = start_pushing(start_simulator)
    ws = subscribed_reader(simulator, receive_buffer=16 * 1024)
    (conn_id,) = (conn["conn_id"] for conn in simulator.state()["connections"])
    stopped_reading = time.monotonic()
    watch = Watch(simulator)
    state = watch.until(lambda state: state["slow_reader_disconnects"] == 1, timeout=20)
    behind_for = time.monotonic() - stopped_reading
    assert behind_for > MAX_BACKLOG_SECONDS, "the oldest unread push had to be that old first"
    assert state["messages_skipped"] == 0, "queued, not skipped"
    assert watch.max_write_buffer_bytes > SMALL_WRITE_BUFFER, "queued past the skip mode's bound"
    assert watch.max_backlog_seconds > 0
    watch.until(lambda state: state["open_connections"] == 0, timeout=5)
    assert isinstance(
        read_until_it_fails(ws, timeout=5), (ConnectionError, websocket.WebSocketConnectionClosedException)
    )
    (warning,) = (
        record for record in caplog.records if record.levelno == logging.WARNING and conn_id in record.message
    )
    assert "behind" in warning.message
    assert simulator.slow_reader_disconnects() == 1


def test_it_queues_every_push_for_a_reader_that_pauses_within_the_bound(
    start_simulator: Callable[..., RunningSimulator], subscribed_reader: Callable[..., websocket.WebSocket]
) -> None:
    simulator = start_pushing(start_simulator, max_backlog_seconds=5.0)
    ws = subscribed_reader(simulator, receive_buffer=16 * 1024)
    watch = Watch(simulator)
    watch.for_seconds(3.0)
    assert watch.max_write_buffer_bytes > SMALL_WRITE_BUFFER
    resumed_ms = time.time() * 1000
    ws.settimeout(10)
    stamps, lags = [], []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        push = json.loads(ws.recv())
        stamps.append(push["ts"])
        lags.append(time.time() * 1000 - push["ts"])
        if push["ts"] > resumed_ms:
            break
    else:
        raise AssertionError("the reader did not catch up")
    # Pushes are 12.5 ms apart; skipping them while the reader paused would leave a hole of about two seconds.
    assert max(b - a for a, b in itertools.pairwise(stamps)) < 1000, "no push left out"
    assert max(lags) > 2000, "a queued push carries the time it was produced: the lag shows the backlog"
    state = simulator.state()
    assert state["slow_reader_disconnects"] == 0
    assert state["messages_skipped"] == 0
    assert state["open_connections"] == 1


def test_it_keeps_a_reader_that_keeps_up_connected_with_no_backlog(
    start_simulator: Callable[..., RunningSimulator], subscribed_reader: Callable[..., websocket.WebSocket]
) -> None:
    simulator = start_pushing(start_simulator)
    ws = subscribed_reader(simulator)
    received = 0
    reading = threading.Event()
    reading.set()

    def read() -> None:
        nonlocal received
        with contextlib.suppress(Exception):
            while reading.is_set():
                ws.recv()
                received += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    watch = Watch(simulator)
    sent_before = simulator.messages_sent()
    state = watch.for_seconds(3 * MAX_BACKLOG_SECONDS)
    sent = state["messages_sent"] - sent_before
    reading.clear()
    assert state["slow_reader_disconnects"] == 0
    assert state["open_connections"] == 1
    (conn,) = state["connections"]
    assert conn["slow_reader_disconnects"] == 0
    assert watch.max_backlog_seconds < MAX_BACKLOG_SECONDS / 2
    assert state["messages_skipped"] == 0
    assert sent > RATE_HZ * TICKERS, "pushed at the rate for over a second"
    assert received > sent / 2
    reader.join(5)


def test_skip_mode_skips_pushes_to_a_reader_that_stopped_and_keeps_it_connected(
    start_simulator: Callable[..., RunningSimulator], subscribed_reader: Callable[..., websocket.WebSocket]
) -> None:
    simulator = start_pushing(start_simulator, slow_reader="skip")
    ws = subscribed_reader(simulator, receive_buffer=16 * 1024)
    watch = Watch(simulator)
    first = watch.until(lambda state: state["messages_skipped"] > 0, timeout=20)
    state = watch.until(lambda state: state["connections"][0]["backlog_seconds"] > 2 * MAX_BACKLOG_SECONDS, timeout=20)
    assert state["slow_reader"] == "skip"
    assert state["slow_reader_disconnects"] == 0
    assert state["open_connections"] == 1
    assert state["messages_skipped"] > first["messages_skipped"], "it goes on skipping"
    (conn,) = state["connections"]
    assert conn["messages_skipped"] == state["messages_skipped"]
    assert conn["write_buffer_bytes"] < 4 * SMALL_WRITE_BUFFER, "held near the skip bound"
    resumed_ms = time.time() * 1000
    ws.settimeout(10)
    deadline = time.monotonic() + 20
    while ts_ms(ws.recv()) <= resumed_ms:
        assert time.monotonic() < deadline, "the reader did not catch up"


def test_it_disconnects_slow_readers_by_default() -> None:
    config = parse_cli([])
    assert config.slow_reader == "disconnect"
    assert config.max_backlog_seconds == 5.0


def test_its_command_line_round_trips_the_slow_reader_options() -> None:
    config = SimulatorConfig(slow_reader="skip", max_backlog_seconds=2.5, max_write_buffer=65536)
    argv = config_to_argv(config)
    assert argv[argv.index("--slow-reader") + 1] == "skip"
    assert parse_cli(argv) == config


@pytest.mark.parametrize(
    "changes",
    [
        {"slow_reader": "drop"},
        {"max_backlog_seconds": 0},
        {"max_backlog_seconds": -1.0},
        {"max_backlog_seconds": float("nan")},
    ],
)
def test_it_refuses_bad_slow_reader_settings(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        SimulatorConfig(**changes)


@pytest.mark.parametrize("argv", [["--slow-reader", "drop"], ["--max-backlog-seconds", "0"]])
def test_its_command_line_refuses_bad_slow_reader_settings(argv: list[str]) -> None:
    with pytest.raises((SystemExit, ValueError)):
        parse_cli(argv)
