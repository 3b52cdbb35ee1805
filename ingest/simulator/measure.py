"""Measure the rate a real consumer receives from the simulator: ``python -m ingest.simulator.measure``.

Starts a bench-mode simulator in a process of its own (or uses ``--url``), subscribes ``--topics``
tickers in requests of 500 from one connection, counts what arrives for ``--seconds`` after a warm-up
and prints messages/s with the CPU both processes used. The consumer is one of:

* ``aiohttp`` — aiohttp's C frame reader, counting frames: close to the simulator's own ceiling;
* ``pybit`` — pybit 5.17 ``WebSocket`` with ``callback_function=`` counting: the ingest's client path;
* ``websocket-client`` — a bare websocket-client ``recv()`` loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from ingest.simulator.config import SimulatorConfig
from ingest.simulator.runner import run_simulator_process

CHUNK = 500


def _symbols(rest_url: str, topics: int) -> list[str]:
    symbols: list[str] = []
    for base in ("BTC", "ETH", "SOL", "XRP"):
        with urllib.request.urlopen(f"{rest_url}/sim/symbols?baseCoin={base}", timeout=10) as response:
            symbols += json.loads(response.read())["symbols"]
    return symbols[:topics]


def _measure_with(counter: Callable[[], int], *, warmup: float, seconds: float) -> tuple[int, float]:
    time.sleep(warmup)
    before, started = counter(), time.monotonic()
    time.sleep(seconds)
    return counter() - before, time.monotonic() - started


def consume_pybit(ws_url: str, args: list[str], warmup: float, seconds: float) -> tuple[int, float]:
    from pybit.unified_trading import WebSocket

    count = [0]

    def on_message(message: dict[str, Any]) -> None:
        if "topic" in message:
            count[0] += 1

    class LoopbackWebSocket(WebSocket):
        def _connect(self, url: str) -> None:
            super()._connect(ws_url)

    ws = LoopbackWebSocket(testnet=False, channel_type="option", callback_function=on_message)
    try:
        for start in range(0, len(args), CHUNK):
            ws.ticker_stream(symbol=args[start : start + CHUNK], callback=on_message)
        return _measure_with(lambda: count[0], warmup=warmup, seconds=seconds)
    finally:
        ws.exit()


def consume_websocket_client(ws_url: str, args: list[str], warmup: float, seconds: float) -> tuple[int, float]:
    import websocket

    ws = websocket.create_connection(ws_url)
    count = [0]
    stop = threading.Event()
    for start in range(0, len(args), CHUNK):
        ws.send(json.dumps({"op": "subscribe", "args": [f"tickers.{s}" for s in args[start : start + CHUNK]]}))

    def read() -> None:
        while not stop.is_set():
            ws.recv()
            count[0] += 1

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        return _measure_with(lambda: count[0], warmup=warmup, seconds=seconds)
    finally:
        stop.set()
        ws.close()


def consume_aiohttp(ws_url: str, args: list[str], warmup: float, seconds: float) -> tuple[int, float]:
    import aiohttp

    async def run() -> tuple[int, float]:
        count = 0
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
            for start in range(0, len(args), CHUNK):
                topics = [f"tickers.{s}" for s in args[start : start + CHUNK]]
                await ws.send_str(json.dumps({"op": "subscribe", "args": topics}))
            loop = asyncio.get_running_loop()
            measure_from = loop.time() + warmup
            measure_to = measure_from + seconds
            before = None
            async for _message in ws:
                count += 1
                now = loop.time()
                if before is None and now >= measure_from:
                    before, started = count, now
                if now >= measure_to and before is not None:
                    return count - before, now - started
        raise RuntimeError("the simulator closed the connection")

    return asyncio.run(run())


CLIENTS = {"aiohttp": consume_aiohttp, "pybit": consume_pybit, "websocket-client": consume_websocket_client}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ingest.simulator.measure", description=__doc__)
    parser.add_argument("--client", choices=sorted(CLIENTS), default="pybit")
    parser.add_argument("--url", help="rest URL of a running simulator (default: start a bench simulator)")
    parser.add_argument("--topics", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=0.0, help="rate of the started simulator (0 = unlimited)")
    parser.add_argument("--mode", choices=["bench", "normal"], default="bench", help="mode of the started simulator")
    parser.add_argument("--assets", default="BTC,ETH,SOL,XRP")
    parser.add_argument("--symbols", type=Path, help="symbols file for the started simulator")
    options = parser.parse_args(argv)
    consume = CLIENTS[options.client]
    if options.mode == "normal" and not options.rate:
        options.rate = 10.0
    if options.url:
        rest_url = options.url.rstrip("/")
        ws_url = rest_url.replace("http", "ws", 1) + "/v5/public/option"
        _report(options, consume, rest_url, ws_url, None)
        return
    config = SimulatorConfig(
        bench=options.mode == "bench",
        rate_hz=options.rate,
        assets=tuple(options.assets.split(",")),
        symbols_file=options.symbols,
        log_level="WARNING",
    )
    with run_simulator_process(config, stderr=subprocess.DEVNULL) as simulator:
        _report(options, consume, simulator.rest_url, simulator.ws_url, simulator.process.pid)


def _report(
    options: argparse.Namespace, consume: Callable[..., tuple[int, float]], rest_url: str, ws_url: str, pid: int | None
) -> None:
    symbols = _symbols(rest_url, options.topics)
    me = psutil.Process()
    simulator = psutil.Process(pid) if pid else None
    my_cpu = sum(me.cpu_times()[:2])
    sim_cpu = sum(simulator.cpu_times()[:2]) if simulator else 0.0
    psutil.cpu_percent()  # starts the machine-wide measurement interval
    started = time.monotonic()
    received, elapsed = consume(ws_url, symbols, options.warmup, options.seconds)
    machine = psutil.cpu_percent() * psutil.cpu_count() / 100
    wall = time.monotonic() - started
    my_cpu = sum(me.cpu_times()[:2]) - my_cpu
    sim_cpu = (sum(simulator.cpu_times()[:2]) - sim_cpu) if simulator else float("nan")
    rate_text = f"{options.rate:g}/s/topic" if options.rate else "unlimited"
    print(
        f"mode={options.mode} client={options.client} topics={len(symbols)} rate={rate_text} "
        f"received={received} in {elapsed:.1f}s -> {received / elapsed:,.0f} msg/s; "
        f"CPU over {wall:.1f}s incl. warm-up: consumer {my_cpu / wall:.0%}, simulator {sim_cpu / wall:.0%} of a core; "
        f"whole machine {machine:.2f} of {psutil.cpu_count()} cores busy"
    )


if __name__ == "__main__":
    main()
