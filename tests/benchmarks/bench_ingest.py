"""Ingest benchmark: can the feed keep up with Bybit's full rate, as a ratio to pybit's own receive path?

Every part runs in this one invocation, so that its figures can be compared with the reference
measured minutes before on the same machine (whose speed drifts ~2x from day to day):

1. the reference: stock pybit (its own ``WebSocket``, ``json`` parsing, topic dispatch) with a
   callback that only counts, the simulator pushing as fast as the socket drains; beside it the
   project's transport alone (``ingest.bybit.OptionSocket``: pybit's socket, orjson parsing);
2. one feed process (``manage.py run_feed BTC``: the feed as a worker runs it, with the channel
   layer) on 2,000 contracts, as fast as the socket drains (its capacity, ÷ the reference);
   1 and 2 alternate 3 times, since the machine's speed drifts within minutes; then the feed at
   fixed rates (does it keep up: everything received, no reader dropped, freshness p99);
3. the default stack, ``make demo``'s process layout (simulator, feed workers, beat, web) with
   BTC, ETH and SOL at the full rate, 10 pushes a second for every listed contract: received ÷
   offered, skipped, readers dropped, freshness, CPU and peak RSS of every process;
4. the highest total rate with one and with two feed processes (two assets of 2,000 contracts),
   alternated twice.

Freshness is measured from outside the feed: a sampler polls each asset's chain revision every
10 ms and, when it moves, reads the chain entries of 200 sampled contracts; a changed ``ts`` was made
visible between two polls, so ``poll time - ts`` is its exchange ``ts`` → visible in Redis.

Run: ``make bench`` or ``python -m tests.benchmarks ingest`` (``BENCH_SECONDS``, default 30, per
measured part). Figures go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psutil

from optionsite.devstack import ensured_redis

BASE_DIR = Path(__file__).resolve().parents[2]
CONTRACTS = 2000
SAMPLED_CONTRACTS = 200


def bench_symbols(today: date, base: str = "BTC") -> list[str]:
    """2,000 contracts of ``base``: 5 Friday expiries x 100 strikes x call/put x USDT/USDC."""
    friday = today + timedelta(days=(4 - today.weekday()) % 7 + 7)
    expiries = [friday + timedelta(weeks=week) for week in range(5)]
    from ingest.symbols import format_symbol

    return [
        format_symbol(base=base, expiry=expiry, strike=60_000 + 1_000 * step, option_type=kind, settle=settle)
        for expiry in expiries
        for step in range(100)
        for kind in ("call", "put")
        for settle in ("USDT", "USDC")
    ]


def percentile(values: Any, fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def machine_line() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores ({model or platform.processor()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}"
    )


# --- 1. the reference -------------------------------------------------------------------------


def count_only_rate(ws_url: str, symbols: list[str], *, seconds: float, stock: bool) -> tuple[float, float]:
    """(msg/s, µs CPU per message) of a socket whose handler only counts: stock pybit, or ours."""
    count = [0]

    def counted(_: Any) -> None:
        count[0] += 1

    if stock:
        from pybit.unified_trading import WebSocket

        class LoopbackWebSocket(WebSocket):
            def _connect(self, url: str) -> None:
                super()._connect(ws_url)

        socket: Any = LoopbackWebSocket(testnet=False, channel_type="option")
        for start in range(0, len(symbols), 500):  # pybit sends one request per call: keep it within Bybit's limit
            socket.ticker_stream(symbol=symbols[start : start + 500], callback=counted)
        close = socket.exit
    else:
        from ingest.bybit import OptionSocket
        from ingest.connections import subscription_requests

        socket = OptionSocket(url=ws_url, on_frame=counted, on_bad_frame=lambda why: None)
        socket.open()
        for chunk in subscription_requests([f"tickers.{s}" for s in symbols], per_request=500, max_chars=21_000):
            socket.send_json({"op": "subscribe", "args": chunk})
        close = socket.close
    try:
        time.sleep(2)
        me = psutil.Process()
        start_count, start_cpu, started = count[0], cpu_seconds(me), time.monotonic()
        time.sleep(seconds)
        received = count[0] - start_count
        cpu = cpu_seconds(me) - start_cpu
        return received / (time.monotonic() - started), cpu / max(received, 1) * 1e6
    finally:
        close()


# --- freshness, from outside ------------------------------------------------------------------


class FreshnessSampler(threading.Thread):
    """Exchange ``ts`` → visible in Redis, for a sample of each asset's contracts (module docstring)."""

    def __init__(self, assets: list[str], *, poll: float = 0.01) -> None:
        super().__init__(name="freshness", daemon=True)
        from optionsite.redis_client import redis_connection

        self.client = redis_connection()
        self.assets = assets
        self.poll = poll
        self.lags = array("d")
        self.measuring = False
        self._stopping = threading.Event()
        self._samples: dict[str, list[str]] = {}

    def run(self) -> None:
        import orjson

        from ingest.keys import chain_key, chain_revision_key, contracts_key
        from optionsite.redis_client import texts

        revisions: dict[str, Any] = {}
        last_ts: dict[str, int] = {}
        while not self._stopping.wait(self.poll):
            pipe = self.client.pipeline(transaction=False)
            for asset in self.assets:
                pipe.get(chain_revision_key(asset))
            for asset, revision in zip(self.assets, pipe.execute(), strict=True):
                if revision is None or revision == revisions.get(asset):
                    continue
                revisions[asset] = revision
                sample = self._samples.get(asset)
                if not sample:
                    symbols = sorted(texts(self.client.smembers(contracts_key(asset))))
                    sample = self._samples[asset] = symbols[:: max(1, len(symbols) // SAMPLED_CONTRACTS)]
                rows = self.client.hmget(chain_key(asset), sample)
                seen = time.time() * 1000
                for symbol, raw in zip(sample, rows, strict=True):
                    ts = orjson.loads(raw)["ts"] if raw else None
                    if ts is not None and ts != last_ts.get(symbol):
                        if self.measuring and symbol in last_ts:
                            self.lags.append(seen - ts)
                        last_ts[symbol] = ts

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)

    def figures(self) -> dict[str, float]:
        return {"freshness_p50_ms": percentile(self.lags, 0.50), "freshness_p99_ms": percentile(self.lags, 0.99)}


# --- processes --------------------------------------------------------------------------------


@dataclass
class Watched:
    """A process whose CPU and peak RSS are measured over a window."""

    name: str
    process: psutil.Process
    cpu_start: float = 0.0
    peak_rss: int = 0
    cpu: float = 0.0
    children: list[psutil.Process] = field(default_factory=list)

    def start(self) -> None:
        self.cpu_start = self._cpu()
        self.peak_rss = 0

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)

    def finish(self, elapsed: float) -> None:
        self.cpu = (self._cpu() - self.cpu_start) / elapsed

    def _cpu(self) -> float:
        try:
            return cpu_seconds(self.process)
        except psutil.Error:
            return self.cpu_start


def measure(
    seconds: float, watched: list[Watched], counters: Callable[[], dict[str, float]]
) -> tuple[float, dict[str, float]]:
    """Run for ``seconds`` sampling RSS every 0.5 s; returns (elapsed, counter deltas)."""
    for item in watched:
        item.start()
    before, started = counters(), time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(0.5)
        for item in watched:
            item.sample()
    elapsed = time.monotonic() - started
    after = counters()
    for item in watched:
        item.finish(elapsed)
    return elapsed, {key: after[key] - before[key] for key in after}


def settled(simulator: Any, counters: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The counters with nothing in flight: the simulator holds its pushes while the feeds drain and flush.

    Read on the fly, a feed's count trails the simulator's by what is in flight (a flush's worth,
    or a backlog); read once the feeds' counts stop moving, received and sent must agree exactly
    unless something was lost (a feed behind by more than the 5 s this waits does not settle).
    """
    simulator.stall(seconds=8)
    try:
        time.sleep(0.6)
        before = counters()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.4)
            now = counters()
            if now == before:
                break
            before = now
        return before
    finally:
        simulator.clear_faults()


class Environment:
    """What every feed process of the benchmark shares: a migrated SQLite file, this Redis and prefix."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=BASE_DIR, env=self.env, check=True
        )

    def with_simulator(self, simulator: Any) -> dict[str, str]:
        return {**self.env, "BYBIT_REST_URL": simulator.rest_url, "BYBIT_WS_URL": simulator.ws_url}

    def log(self, name: str) -> Any:
        return (self.directory / f"{name}.log").open("ab")


@contextlib.contextmanager
def feed_processes(environment: Environment, simulator: Any, assets: list[str]) -> Iterator[list[Watched]]:
    """``manage.py run_feed ASSET`` for each asset, live with every topic before this yields."""
    from ingest.keys import feed_lease_key
    from ingest.status import read_feed_status
    from ingest.store import purge_asset
    from optionsite.redis_client import redis_connection

    client = redis_connection()
    env = environment.with_simulator(simulator)
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_feed", asset, "--every", "0"],
            cwd=BASE_DIR,
            env=env,
            stdout=environment.log(f"feed-{asset}"),
            stderr=subprocess.STDOUT,
        )
        for asset in assets
    ]
    try:
        deadline = time.monotonic() + 60
        for asset in assets:
            wanted = len(simulator.live_symbols(asset))
            while True:
                status = read_feed_status(client, asset)
                if status is not None and status.state == "live" and status.subscribed == wanted:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {asset} feed did not go live: {status}")
                time.sleep(0.2)
        time.sleep(3)  # past the first full writes
        yield [Watched(f"feed {asset}", psutil.Process(p.pid)) for asset, p in zip(assets, processes, strict=True)]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for asset in assets:
            purge_asset(client, asset=asset)
            client.delete(feed_lease_key(asset))


def received_total(assets: list[str]) -> Callable[[], dict[str, float]]:
    from ingest.status import read_feed_status
    from optionsite.redis_client import redis_connection

    client = redis_connection()

    def read() -> dict[str, float]:
        totals = {}
        for asset in assets:
            status = read_feed_status(client, asset)
            totals[asset] = float(status.messages_total if status else 0)
        return totals

    return read


def feed_run(
    environment: Environment, symbols_file: Path, *, assets: list[str], rate_hz: float, seconds: float
) -> dict[str, Any]:
    """Feed processes for ``assets`` against a bench-mode simulator pushing at ``rate_hz`` (0: unlimited)."""
    from ingest.simulator import SimulatorConfig, run_simulator_process

    config = SimulatorConfig(
        assets=tuple(assets),
        symbols_file=symbols_file,
        list_ladder=False,
        bench=True,
        rate_hz=rate_hz,
        log_level="WARNING",
    )
    with (
        run_simulator_process(config, stderr=environment.log("simulator")) as simulator,
        feed_processes(environment, simulator, assets) as feeds,
    ):
        sampler = FreshnessSampler(assets)
        sampler.start()
        received = received_total(assets)

        def counters() -> dict[str, float]:
            state = simulator.state()
            return {
                **received(),
                "sent": float(state["messages_sent"]),
                "skipped": float(state["messages_skipped"]),
                "dropped": float(state["slow_reader_disconnects"]),
            }

        first = settled(simulator, counters)
        sampler.measuring = True
        elapsed, deltas = measure(
            seconds, [*feeds, Watched("simulator", psutil.Process(simulator.process.pid))], counters
        )
        sampler.stop()
        last = settled(simulator, counters)
    return {
        "received_per_s": sum(deltas[asset] for asset in assets) / elapsed,
        "sent_per_s": deltas["sent"] / elapsed,
        "received_of_sent": sum(last[a] - first[a] for a in assets) / max(1.0, last["sent"] - first["sent"]),
        "skipped": deltas["skipped"],
        "readers_dropped": deltas["dropped"],
        **sampler.figures(),
        "feeds": [(feed.name, feed.cpu, feed.peak_rss) for feed in feeds],
    }


def feed_line(result: dict[str, Any], reference: float | None = None) -> str:
    feeds = ", ".join(f"{name} {cpu:.2f} core {rss / 2**20:.0f} MB" for name, cpu, rss in result["feeds"])
    ratio = f" = {result['received_per_s'] / reference:.2f}x the reference" if reference else ""
    return (
        f"sent {result['sent_per_s']:,.0f}/s, received {result['received_per_s']:,.0f}/s{ratio} "
        f"({result['received_of_sent']:.4f} of sent, settled), skipped {result['skipped']:.0f}, "
        f"readers dropped {result['readers_dropped']:.0f}, freshness p50 {result['freshness_p50_ms']:.0f} ms "
        f"p99 {result['freshness_p99_ms']:.0f} ms; {feeds}"
    )


def default_stack(environment: Environment, *, seconds: float) -> dict[str, Any]:
    """``make demo``'s processes (optionsite.devstack) with BTC, ETH and SOL at 10 pushes/s per contract."""
    from ingest.simulator.runner import SimulatorProcess
    from optionsite import devstack

    assets = ["BTC", "ETH", "SOL"]
    env = {**environment.env, "LOG_LEVEL": "INFO"}
    log = (environment.directory / "stack.log").open("w")
    stack = devstack.Stack(env, output=log)
    try:
        stack.start(devstack.simulator_services(mode="demo", env=env))
        # The demo's simulator, controlled over its HTTP routes like any simulator process.
        simulator = SimulatorProcess(
            process=stack.processes["simulator"],  # type: ignore[arg-type]
            rest_url=env["BYBIT_REST_URL"],
            ws_url=env["BYBIT_WS_URL"],
        )
        simulator_state = simulator.state
        deadline = time.monotonic() + 30
        while True:
            try:
                simulator_state()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        feeds = devstack.start_feed_processes(stack)
        stack.wait_ready(feeds, timeout=devstack.FEEDS_READY_TIMEOUT)
        stack.start(devstack.front_services())
        devstack.start_web_processes(stack, host="127.0.0.1", port=devstack.free_port())

        from ingest.status import read_feed_status
        from optionsite.redis_client import redis_connection

        client = redis_connection()
        listed = simulator_state()["live_symbols"]
        deadline = time.monotonic() + 90
        while True:
            statuses = {asset: read_feed_status(client, asset) for asset in assets}
            if all(s is not None and s.state == "live" and s.subscribed == listed[a] for a, s in statuses.items()):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo's feeds did not go live: {statuses}")
            time.sleep(0.5)
        time.sleep(5)
        placement = {asset: (status.worker if status else "?") for asset, status in statuses.items()}
        sampler = FreshnessSampler(assets)
        sampler.start()
        received = received_total(assets)

        def counters() -> dict[str, float]:
            state = simulator_state()
            return {
                **received(),
                "sent": float(state["messages_sent"]),
                "skipped": float(state["messages_skipped"]),
                "dropped": float(state["slow_reader_disconnects"]),
                "connections_opened": float(state["connections_opened"]),
            }

        watched = [Watched(name, psutil.Process(process.pid)) for name, process in stack.processes.items()]
        first = settled(simulator, counters)
        sampler.measuring = True
        elapsed, deltas = measure(seconds, watched, counters)
        sampler.stop()
        last = settled(simulator, counters)
        contracts = sum(listed[asset] for asset in assets)
    finally:
        stack.stop(timeout=devstack.STOP_TIMEOUT)
        log.close()
    return {
        "contracts": contracts,
        "offered_per_s": 10.0 * contracts,
        "sent_per_s": deltas["sent"] / elapsed,
        "received_per_s": sum(deltas[asset] for asset in assets) / elapsed,
        "received_of_sent": sum(last[a] - first[a] for a in assets) / max(1.0, last["sent"] - first["sent"]),
        "skipped": deltas["skipped"],
        "readers_dropped": deltas["dropped"],
        "reconnections": deltas["connections_opened"],
        "placement": placement,
        **sampler.figures(),
        "processes": [(item.name, item.cpu, item.peak_rss) for item in watched],
    }


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "30"))
    os.environ["REDIS_KEY_PREFIX"] = f"bench-{secrets.token_hex(3)}:"
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "optionsite.settings"
    with ensured_redis(os.environ.get("REDIS_URL")) as redis_url, TemporaryDirectory() as tmp:
        os.environ["REDIS_URL"] = redis_url
        import django

        django.setup()
        from ingest.simulator import SimulatorConfig, run_simulator_process

        directory = Path(tmp)
        today = datetime.now(UTC).date()
        symbols_file = directory / "symbols.txt"
        symbols_file.write_text("\n".join(bench_symbols(today, "BTC") + bench_symbols(today, "ETH")))
        environment = Environment(directory)
        print(machine_line(), flush=True)

        print("1.+2. the reference, and one feed process (manage.py run_feed BTC) on 2,000 contracts,", flush=True)
        print("      each as fast as the socket drains, alternated 3 times (the machine drifts)", flush=True)
        config = SimulatorConfig(
            assets=("BTC",), symbols_file=symbols_file, list_ladder=False, bench=True, rate_hz=0, log_level="WARNING"
        )
        ratios = []
        for _ in range(3):
            with run_simulator_process(config, stderr=environment.log("simulator")) as simulator:
                symbols = simulator.live_symbols("BTC")
                stock, stock_us = count_only_rate(simulator.ws_url, symbols, seconds=min(seconds, 10), stock=True)
                ours, ours_us = count_only_rate(simulator.ws_url, symbols, seconds=min(seconds, 10), stock=False)
            print(f"  reference, stock pybit (json): {stock:,.0f} msg/s, {stock_us:.1f} µs CPU/msg", flush=True)
            print(
                f"  the project's transport alone (OptionSocket, orjson): {ours:,.0f} msg/s, {ours_us:.1f} µs CPU/msg"
            )
            capacity = feed_run(environment, symbols_file, assets=["BTC"], rate_hz=0, seconds=min(seconds, 15))
            print(f"  one feed process: {feed_line(capacity, stock)}", flush=True)
            ratios.append(capacity["received_per_s"] / stock)
        listed = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        print(f"  one feed process / the reference: {listed}; median {sorted(ratios)[1]:.2f}", flush=True)
        print("   one feed process at fixed rates:", flush=True)
        for rate in (7.5, 10, 12.5, 15):
            step = feed_run(environment, symbols_file, assets=["BTC"], rate_hz=rate, seconds=min(seconds, 15))
            keeps_up = (
                step["received_of_sent"] >= 0.999 and not step["readers_dropped"] and step["freshness_p99_ms"] <= 300
            )
            print(
                f"  {rate * CONTRACTS:,.0f} msg/s offered ({step['sent_per_s'] / (rate * CONTRACTS):.3f} sent): "
                f"{feed_line(step)} -> "
                f"{'keeps up' if keeps_up else 'falls behind'}",
                flush=True,
            )

        print("3. the default stack (make demo's processes), BTC, ETH and SOL at 10 pushes/s per contract", flush=True)
        stack = default_stack(environment, seconds=seconds)
        feeds_cpu = sum(cpu for name, cpu, _ in stack["processes"] if name.startswith("feeds"))
        print(
            f"  {stack['contracts']:,} contracts, {stack['offered_per_s']:,.0f} msg/s offered: "
            f"sent {stack['sent_per_s']:,.0f}/s ({stack['sent_per_s'] / stack['offered_per_s']:.3f} of offered), "
            f"received {stack['received_per_s']:,.0f}/s "
            f"({stack['received_of_sent']:.4f} of sent, settled), skipped {stack['skipped']:.0f}, "
            f"readers dropped {stack['readers_dropped']:.0f}, new connections {stack['reconnections']:.0f}; "
            f"freshness p50 {stack['freshness_p50_ms']:.0f} ms p99 {stack['freshness_p99_ms']:.0f} ms; "
            f"feed processes together {feeds_cpu:.2f} cores; placement {stack['placement']}",
            flush=True,
        )
        for name, cpu, rss in stack["processes"]:
            print(f"    {name}: {cpu:.2f} core, peak RSS {rss / 2**20:.0f} MB")

        print(
            "4. the highest total rate with 1 and 2 feed processes (as fast as the socket drains), alternated",
            flush=True,
        )
        singles, pairs = [], []
        for _ in range(2):
            singles.append(feed_run(environment, symbols_file, assets=["BTC"], rate_hz=0, seconds=seconds))
            print(f"  1 process: {feed_line(singles[-1], stock)}", flush=True)
            pairs.append(feed_run(environment, symbols_file, assets=["BTC", "ETH"], rate_hz=0, seconds=seconds))
            print(f"  2 processes: {feed_line(pairs[-1], stock)}", flush=True)
        one = sum(run["received_per_s"] for run in singles) / len(singles)
        two = sum(run["received_per_s"] for run in pairs) / len(pairs)
        added = (two - one) / one
        print(f"  mean: 1 process {one:,.0f} msg/s, 2 processes {two:,.0f} msg/s: the second adds {added:.2f}x")
        print(machine_line())
        delete_prefix(os.environ["REDIS_KEY_PREFIX"])


def delete_prefix(prefix: str) -> None:
    """Remove every key the run left under its own prefix (stopped feeds keep their data on purpose)."""
    from optionsite.redis_client import redis_connection

    client = redis_connection()
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


if __name__ == "__main__":
    main()
