"""Live chain benchmark: exchange ``ts`` → received by a WebSocket client, 100 clients, feed at ~6,000 msg/s.

Processes (each its own, so that none shares a core's time with the clients it is measured by):

* the simulator in bench mode: 1,000 BTC contracts from a file (5 expiries x 50 strikes x call/put x
  USDT/USDC) plus those its expiry ladder lists beside them (~1,500 in all), each pushed ``RATE_HZ`` (4)
  times a second, i.e. ~6,000 msg/s;
* the real feed (``ingest.feed.AssetFeed``, as a Celery worker runs it) writing Redis and sending
  ``chain.update`` to the channel layer every ``FEED_FLUSH_INTERVAL`` (default 0.25 s);
* one daphne serving ``/ws/chain/BTC/``;
* here, 100 aiohttp WebSocket clients that acknowledge every frame as the page does: 90 watch one expiry and
  one settle coin of the file's expiries (the page's chain view, 100 contracts), 10 the whole chain (the
  page's flat view).

For every row a client receives, latency = its receive time minus the row's exchange ``ts`` (one machine, one
clock). Also: daphne's CPU (% of one core) and peak RSS, the feed's CPU, resync snapshots (should be none).

Run: ``make bench`` or ``python -m tests.benchmarks live`` (``BENCH_SECONDS``, default 30, after a 10 s
warm-up). Figures go to docs/benchmarks.md ("Live chain") by hand.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from array import array
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import orjson
import psutil

from optionsite.devstack import ensured_redis, free_port, web_server_args

BASE_DIR = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
RATE_HZ = 4
CLIENTS = 100
WHOLE_CHAIN_CLIENTS = 10
WARMUP_SECONDS = 10

FEED_PROCESS = """
import signal, threading
from channels.layers import get_channel_layer
from ingest.feed import AssetFeed, FeedSettings
from optionsite.redis_client import redis_connection
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *args: stop.set())
AssetFeed(asset="BTC", settings=FeedSettings.from_django(), client=redis_connection(),
          channel_layer=get_channel_layer(), stop_event=stop).run()
"""


def bench_symbols(today: date) -> list[str]:
    from ingest.symbols import format_symbol

    friday = today + timedelta(days=(4 - today.weekday()) % 7 + 7)
    return [
        format_symbol(base="BTC", expiry=expiry, strike=80_000 + 1_000 * step, option_type=kind, settle=settle)
        for expiry in (friday + timedelta(weeks=week) for week in range(5))
        for step in range(50)
        for kind in ("call", "put")
        for settle in ("USDT", "USDC")
    ]


def percentile(values: array[float] | list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_for_port(port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"daphne does not listen on port {port}") from None
            time.sleep(0.2)


def redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Client:
    """One WebSocket client: applies and acknowledges every frame, records each row's latency."""

    def __init__(self, url: str, *, origin: str) -> None:
        self.url = url
        self.origin = origin
        self.latencies = array("d")
        # The latency in stages: exchange ts → the ingest received it → its flush sent the event (the
        # update's ts) → this client received the frame.
        self.feed_latencies = array("d")
        self.flush_waits = array("d")
        self.deliveries = array("d")
        self.frames = 0
        self.bytes = 0
        self.resyncs = 0
        self.measuring = False
        self.ready = asyncio.Event()

    async def run(self, session: Any) -> None:
        async with session.ws_connect(self.url, origin=self.origin, max_msg_size=0) as socket:
            async for message in socket:
                received_ms = time.time() * 1000
                frame = orjson.loads(message.data)
                if frame["type"] == "snapshot":
                    self.ready.set()
                    self.resyncs += frame["reason"] == "resync"
                elif frame["type"] == "update" and self.measuring:
                    self.frames += 1
                    self.bytes += len(message.data)
                    self.deliveries.append(received_ms - frame["ts"])
                    for row in frame["rows"]:
                        self.latencies.append(received_ms - row["ts"])
                        self.feed_latencies.append(row["received_ts"] - row["ts"])
                        self.flush_waits.append(frame["ts"] - row["received_ts"])
                await socket.send_str(orjson.dumps({"type": "ack", "seq": frame["seq"]}).decode())
        raise ConnectionError(f"{self.url} closed by the server (code {socket.close_code})")


async def run_clients(
    base_ws: str, origin: str, expiries: list[str], seconds: float, daphne: psutil.Process
) -> dict[str, Any]:
    import aiohttp

    clients = []
    for number in range(CLIENTS):
        if number < WHOLE_CHAIN_CLIENTS:
            clients.append(Client(f"{base_ws}/ws/chain/BTC/", origin=origin))
        else:
            expiry = expiries[number % len(expiries)]
            settle = "USDT" if number % 2 else "USDC"
            clients.append(Client(f"{base_ws}/ws/chain/BTC/?expiry={expiry}&settle={settle}", origin=origin))
    async with aiohttp.ClientSession() as session:
        # Connected 20 at a time, as the figures in docs/benchmarks.md were measured (before the
        # channel layer's pool was raised from redis-py's default of 100 connections).
        tasks = []
        for start in range(0, len(clients), 20):
            batch = clients[start : start + 20]
            tasks += [asyncio.create_task(client.run(session)) for client in batch]
            ready: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(c.ready.wait() for c in batch)))
            watched: list[asyncio.Future[Any]] = [ready, *tasks]
            done, _ = await asyncio.wait(watched, timeout=60, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                failed = [task.exception() for task in done if task is not ready]
                raise SystemExit(f"clients did not all get their snapshot within 60 s: {failed[:3]}")
        await asyncio.sleep(WARMUP_SECONDS)
        for client in clients:
            client.measuring = True
        started, cpu_started = time.monotonic(), cpu_seconds(daphne)
        peak_rss = daphne.memory_info().rss
        while time.monotonic() - started < seconds:
            await asyncio.sleep(1)
            peak_rss = max(peak_rss, daphne.memory_info().rss)
        elapsed = time.monotonic() - started
        daphne_cpu = cpu_seconds(daphne) - cpu_started
        for client in clients:
            client.measuring = False
        failures = [task.exception() for task in tasks if task.done() and not task.cancelled()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "clients": clients,
        "elapsed": elapsed,
        "daphne_cpu": daphne_cpu,
        "daphne_peak_rss": peak_rss,
        "failures": failures,
    }


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "30"))
    prefix = f"bench-{secrets.token_hex(3)}:"
    with ensured_redis(os.environ.get("REDIS_URL")) as redis_url, TemporaryDirectory() as tmp:
        os.environ.update(
            REDIS_URL=redis_url, REDIS_KEY_PREFIX=prefix, DJANGO_SETTINGS_MODULE="optionsite.settings", DJANGO_DEBUG="1"
        )
        import django

        django.setup()
        from ingest.simulator import SimulatorConfig, run_simulator_process
        from ingest.status import read_feed_status
        from ingest.store import purge_asset
        from optionsite.redis_client import redis_connection

        symbols = bench_symbols(datetime.now(UTC).date())
        symbols_file = Path(tmp) / "symbols.txt"
        symbols_file.write_text("\n".join(symbols))
        expiries = sorted({symbol.split("-")[1] for symbol in symbols})
        memory = psutil.virtual_memory().total / 2**30
        print(f"machine: {os.cpu_count()} cores, {memory:.0f} GiB; {datetime.now(UTC):%Y-%m-%d}")
        config = SimulatorConfig(
            assets=("BTC",), symbols_file=symbols_file, bench=True, rate_hz=RATE_HZ, log_level="WARNING"
        )
        port = free_port()
        processes: dict[str, subprocess.Popen[bytes]] = {}
        client = redis_connection()
        with run_simulator_process(config) as simulator:
            env = {
                **os.environ,
                "DATABASE_URL": f"sqlite:///{Path(tmp) / 'db.sqlite3'}",
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": secrets.token_hex(32),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "BYBIT_REST_URL": simulator.rest_url,
                "BYBIT_WS_URL": simulator.ws_url,
                "LOG_LEVEL": "WARNING",
            }
            manage = [sys.executable, "manage.py"]
            subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=BASE_DIR, env=env, check=True)
            logs = BASE_DIR / "bench-results" / "live"  # the processes' logs, kept for a look afterwards
            logs.mkdir(parents=True, exist_ok=True)
            try:
                processes["feed"] = subprocess.Popen(
                    [*manage, "shell", "-c", FEED_PROCESS],
                    cwd=BASE_DIR,
                    env=env,
                    stdout=(logs / "feed.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
                processes["daphne"] = subprocess.Popen(
                    web_server_args(host="127.0.0.1", port=port),
                    cwd=BASE_DIR,
                    env=env,
                    stdout=(logs / "daphne.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
                deadline = time.monotonic() + 60
                while True:
                    status = read_feed_status(client, "BTC")
                    if status is not None and status.state == "live" and status.subscribed == status.instruments > 0:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(
                            f"the feed did not go live: {status}\n{(logs / 'feed.log').read_text()[-2000:]}"
                        )
                    time.sleep(0.5)
                wait_for_port(port, timeout=30)
                daphne = psutil.Process(processes["daphne"].pid)
                others = {
                    "feed": psutil.Process(processes["feed"].pid),
                    "simulator": psutil.Process(simulator.process.pid),
                    "clients (this process)": psutil.Process(),
                }
                cpu_before = {name: cpu_seconds(process) for name, process in others.items()}
                redis_cpu_before = redis_cpu(client)
                sent_before = simulator.messages_sent()
                measured_at = time.monotonic()
                try:
                    result = asyncio.run(
                        run_clients(f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}", expiries, seconds, daphne)
                    )
                except SystemExit:
                    print((logs / "daphne.log").read_text()[-3000:])
                    raise
                whole = time.monotonic() - measured_at
                sent_per_s = (simulator.messages_sent() - sent_before) / whole
                cpu_shares = {
                    name: (cpu_seconds(process) - cpu_before[name]) / whole for name, process in others.items()
                }
                cpu_shares["redis"] = (redis_cpu(client) - redis_cpu_before) / whole
                status = read_feed_status(client, "BTC")
            finally:
                for process in processes.values():
                    process.send_signal(signal.SIGTERM)
                for process in processes.values():
                    try:
                        process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        process.kill()
                purge_asset(client, asset="BTC")
                keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
                if keys:
                    client.delete(*keys)

    clients: list[Client] = result["clients"]
    elapsed = result["elapsed"]

    def report(label: str, group: list[Client]) -> None:
        latencies = array("d")
        for member in group:
            latencies.extend(member.latencies)
        frames = sum(member.frames for member in group)
        megabytes = sum(member.bytes for member in group) / 2**20
        print(
            f"  {label}: {len(group)} clients, {frames / elapsed / len(group):.1f} updates/s each, "
            f"{len(latencies) / elapsed:,.0f} rows/s, {megabytes / elapsed:.1f} MiB/s; latency p50 "
            f"{percentile(latencies, 0.5):.0f} ms, p90 {percentile(latencies, 0.9):.0f} ms, "
            f"p99 {percentile(latencies, 0.99):.0f} ms, max {max(latencies, default=float('nan')):.0f} ms"
        )

    def merged(name: str) -> array[float]:
        values = array("d")
        for member in clients:
            values.extend(getattr(member, name))
        return values

    contracts = status.instruments if status else 0
    print(
        f"feed: {contracts:,} contracts x {RATE_HZ}/s; simulator sent {sent_per_s:,.0f} msg/s, feed received "
        f"{status.messages_per_second if status else float('nan'):,.0f} msg/s"
    )
    print(f"clients measured for {elapsed:.0f} s after {WARMUP_SECONDS} s warm-up; exchange ts → client receipt:")
    report("all", clients)
    report("one expiry + settle", clients[WHOLE_CHAIN_CLIENTS:])
    report("whole chain", clients[:WHOLE_CHAIN_CLIENTS])
    for label, name in (
        ("exchange ts → ingest receipt", "feed_latencies"),
        ("ingest receipt → flush sent", "flush_waits"),
        ("flush sent → client receipt (per frame)", "deliveries"),
    ):
        values = merged(name)
        print(f"  stage {label}: p50 {percentile(values, 0.5):.0f} ms, p99 {percentile(values, 0.99):.0f} ms")
    print(
        f"daphne: CPU {100 * result['daphne_cpu'] / elapsed:.0f} % of one core, peak RSS "
        f"{result['daphne_peak_rss'] / 2**20:.0f} MiB; resync snapshots: {sum(c.resyncs for c in clients)}; "
        f"clients lost: {len(result['failures'])} {result['failures'][:2]}"
    )
    print(
        "other CPU (% of one core): " + ", ".join(f"{name} {100 * share:.0f} %" for name, share in cpu_shares.items())
    )
