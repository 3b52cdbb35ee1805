"""Fixtures for the ingest tests: a local Bybit simulator on a free loopback port, and real pybit
clients pointed at it (reference §6.1 and §6.2 for how).

* ``simulator`` — a running simulator (all defaults, fixed seed and start) for one test;
* ``start_simulator(**changes)`` — another one with config changes, stopped after the test;
* ``pybit_websocket(ws_url, **kwargs)`` — a pybit option ``WebSocket`` on that URL, exited after the test;
* ``pybit_http(rest_url)`` — a pybit ``HTTP`` session on that URL;
* ``wait_for(condition, timeout=...)`` — poll until ``condition()`` is truthy, then return it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pybit.unified_trading import HTTP, WebSocket

from ingest.simulator import RunningSimulator, SimulatorConfig, run_simulator_in_thread

# A Friday noon: the ladder then has a weekly expiring tomorrow-ish and a Friday delivery a week out.
SIMULATOR_START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REAL_SYMBOLS_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "bybit-option-symbols-2025-09-01.txt"

T = TypeVar("T")


def wide_btc_symbols_file(directory: Path) -> Path:
    """A symbols file with 2,892 BTC contracts (3 expiries x 241 strikes x call/put x USDT/USDC):
    more than one page of instruments-info and more than one connection's 2,000 topics."""
    symbols = [
        f"BTC-{expiry}-{strike}-{kind}{settle}"
        for expiry in ("27NOV26", "25DEC26", "26MAR27")
        for strike in range(50_000, 170_500, 500)
        for kind in ("C", "P")
        for settle in ("-USDT", "")
    ]
    path = directory / "wide-btc-symbols.txt"
    path.write_text("\n".join(symbols))
    return path


def simulator_config(**changes: Any) -> SimulatorConfig:
    """The tests' default config: fixed seed and start, so the universe is the same every run."""
    return SimulatorConfig(seed=7, start=SIMULATOR_START).with_changes(**changes)


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    with run_simulator_in_thread(simulator_config()) as running:
        yield running


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., RunningSimulator]]:
    with contextlib.ExitStack() as stack:

        def start(**changes: Any) -> RunningSimulator:
            return stack.enter_context(run_simulator_in_thread(simulator_config(**changes)))

        yield start


def loopback_websocket(ws_url: str, **kwargs: Any) -> WebSocket:
    """A pybit option WebSocket that connects (and reconnects) to ``ws_url`` instead of Bybit."""

    class LoopbackWebSocket(WebSocket):
        def _connect(self, url: str) -> None:
            # pybit formats its own URL template here; reconnects come through here too.
            super()._connect(ws_url)

    kwargs.setdefault("testnet", False)
    return LoopbackWebSocket(channel_type="option", **kwargs)


@pytest.fixture
def pybit_websocket() -> Iterator[Callable[..., WebSocket]]:
    sockets: list[WebSocket] = []

    def connect(ws_url: str, **kwargs: Any) -> WebSocket:
        socket = loopback_websocket(ws_url, **kwargs)
        sockets.append(socket)
        return socket

    yield connect
    for socket in sockets:
        with contextlib.suppress(Exception):
            socket.exit()


@pytest.fixture
def pybit_http() -> Callable[[str], HTTP]:
    def session(rest_url: str) -> HTTP:
        client = HTTP(testnet=False)
        client.endpoint = rest_url
        return client

    return session


def poll(condition: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.02, message: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {message or condition}")
        time.sleep(interval)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    return poll
