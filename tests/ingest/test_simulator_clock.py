"""Simulated time: delivery at 08:00 UTC and new listings, by the advance control and by --speed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pybit.unified_trading import HTTP, WebSocket

from ingest.simulator import RunningSimulator
from ingest.symbols import parse_symbol


def all_instruments(session: HTTP, base: str) -> list[str]:
    symbols: list[str] = []
    cursor = None
    while True:
        result = session.get_instruments_info(category="option", baseCoin=base, limit=1000, cursor=cursor)["result"]
        symbols += [row["symbol"] for row in result["list"]]
        cursor = result["nextPageCursor"]
        if not cursor:
            return symbols


def test_advancing_past_0800_utc_delivers_and_lists(
    simulator: RunningSimulator,
    pybit_http: Callable[[str], HTTP],
    pybit_websocket: Callable[..., WebSocket],
    wait_for: Any,
) -> None:
    session = pybit_http(simulator.rest_url)
    before = all_instruments(session, "BTC")
    nearest = min(parse_symbol(symbol).expiry for symbol in before)
    expiring = next(symbol for symbol in before if parse_symbol(symbol).expiry == nearest)
    staying = before[-1]
    seen: dict[str, int] = {expiring: 0, staying: 0}
    lock = threading.Lock()

    def on_message(message: dict[str, Any]) -> None:
        if "topic" in message:
            with lock:
                seen[message["data"]["symbol"]] += 1

    ws = pybit_websocket(simulator.ws_url, callback_function=on_message)
    ws.ticker_stream(symbol=[expiring, staying], callback=on_message)
    wait_for(lambda: seen[expiring] > 0 and seen[staying] > 0)

    report = simulator.advance_to_next_delivery()

    assert datetime.fromisoformat(report["sim_time"]) > nearest
    assert expiring in report["delivered"]
    assert all(parse_symbol(symbol).expiry == nearest for symbol in report["delivered"] if symbol.startswith("BTC"))
    after = all_instruments(session, "BTC")
    assert expiring not in after
    assert set(before) - set(after) == {symbol for symbol in report["delivered"] if symbol.startswith("BTC")}
    listed = {symbol for symbol in report["listed"] if symbol.startswith("BTC")}
    assert listed
    assert listed <= set(after)
    assert all(parse_symbol(symbol).expiry.hour == 8 for symbol in listed)

    time.sleep(0.3)
    with lock:
        silenced_at, going_at = seen[expiring], seen[staying]
    wait_for(lambda: seen[staying] > going_at + 3, message="the live contract keeps streaming")
    assert seen[expiring] == silenced_at, "a delivered contract stops streaming"


def test_the_clock_runs_fast_with_speed(
    start_simulator: Callable[..., RunningSimulator], pybit_http: Callable[[str], HTTP], wait_for: Any
) -> None:
    simulator = start_simulator(start=datetime(2026, 11, 21, 7, 59, 0, tzinfo=UTC), speed=120, assets=("SOL",))
    first = simulator.live_symbols("SOL")
    nearest = min(parse_symbol(symbol).expiry for symbol in first)
    assert nearest == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    # One simulated minute at 120x is half a second.
    wait_for(lambda: all(parse_symbol(symbol).expiry > nearest for symbol in simulator.live_symbols("SOL")), timeout=5)
    state = simulator.state()
    assert datetime.fromisoformat(state["sim_time"]) > nearest
    assert state["next_delivery"] == "2026-11-22T08:00:00+00:00"
    rows = pybit_http(simulator.rest_url).get_instruments_info(category="option", baseCoin="SOL", limit=1000)
    assert {row["symbol"] for row in rows["result"]["list"]} == set(simulator.live_symbols("SOL"))
