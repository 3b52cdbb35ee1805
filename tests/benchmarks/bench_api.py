"""The REST API under load: the full BTC chain from one daphne process, 50 concurrent clients.

``python -m tests.benchmarks api`` (or ``make bench``). It uses the Redis at ``REDIS_URL``
(else a private one), under a key prefix of its own that it deletes at the end; a temporary
SQLite database, migrated first; one daphne process on a free loopback port. The chain is
BTC's real listing (778 contracts) with every field quoted (``tests.chain.market``).

Figures printed:

1. the Redis read of the chain alone (one pipeline: ``HVALS`` + decode);
2. closed loop: 50 clients, each sending its next request as soon as the previous one is
   answered: the throughput ceiling, and latency at that load;
3. open loop: 50 clients sending together a fixed number of requests per second, latency
   counted from the moment each request was due (so a slow server cannot hide its queue);
4. 2 and 3 again while a writer rewrites every contract's row 4 times a second, as the
   ingest does at ``FEED_FLUSH_INTERVAL=0.25`` when every contract ticks;
5. the references: the same closed loop against bare daphne serving the same bytes from a bare
   ASGI application (``tests/benchmarks/bare_app.py``), alternated with the project's web
   process in ``REFERENCE_TURNS`` short turns; and, between the turns, how many full chains a
   second the way the dashboards this project replaces read Redis gets (``KEYS`` on the
   per-contract hashes, then one ``HGETALL`` per contract, then JSON), in this process, with
   no web server at all. The ratios are the figures to compare between machines and days.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
ASSET = "BTC"
CLIENTS = 50
DURATION = float(os.environ.get("BENCH_SECONDS", "15"))  # per run
OPEN_LOOP_RATES = (50, 100, 200)
WRITES_PER_SECOND = 4
REFERENCE_TURNS = 3
REFERENCE_SECONDS = 6.0


@dataclass
class LoadResult:
    label: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu: float = 0.0  # seconds of CPU the daphne process used during the run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.label:<44} {self.requests:>6} req {self.rate:>7.1f} req/s  "
            f"p50 {self.percentile(0.5):>7.1f} ms  p90 {self.percentile(0.9):>7.1f} ms  "
            f"p99 {self.percentile(0.99):>7.1f} ms  errors {self.errors}  "
            f"daphne CPU {self.server_cpu / max(1, self.requests) * 1000:.2f} ms/req"
        )


async def closed_loop(url: str, *, clients: int, duration: float, label: str) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers={"Accept": "application/json"}) as session:
        deadline = time.perf_counter() + duration

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return LoadResult(label, len(latencies), errors, elapsed, latencies)


async def open_loop(url: str, *, clients: int, rate: float, duration: float, label: str) -> LoadResult:
    """Each client sends every ``clients / rate`` seconds, the clients' phases spread evenly.

    A client whose previous answer came late sends its next request late too, but its
    latency is counted from when the request was due, not from when it was sent.
    """
    import aiohttp

    latencies: list[float] = []
    errors = 0
    period = clients / rate
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers={"Accept": "application/json"}) as session:
        start = time.perf_counter() + 0.1

        async def client(index: int) -> None:
            nonlocal errors
            due = start + index * period / clients
            while due < start + duration:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - due)
                due += period

        await asyncio.gather(*(client(index) for index in range(clients)))
        elapsed = time.perf_counter() - start
    return LoadResult(label, len(latencies), errors, elapsed, latencies)


class Measure:
    """Runs a load and notes the CPU time the server spent meanwhile."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def __call__(self, load: Coroutine[Any, Any, LoadResult]) -> LoadResult:
        before = self.cpu()
        result = asyncio.run(load)
        result.server_cpu = self.cpu() - before
        return result


def wait_until_serving(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"daphne did not answer {url} within {timeout} s")


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as output:
        process = subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_timings(asset: str, repeat: int = 300) -> dict[str, tuple[float, float]]:
    """p50 and p99, in ms, of reading the chain from Redis: the bare ``HVALS``; ``read_chain``
    (one pipeline: rows, expiries, feed status) decoding every row; and ``read_chain`` when
    the chain did not change since the previous read, so no row is decoded again."""
    from chain import readers
    from ingest.keys import chain_key
    from optionsite.redis_client import redis_connection

    client = redis_connection()
    samples: dict[str, list[float]] = {
        "HVALS alone": [],
        "read_chain, every row decoded": [],
        "read_chain, unchanged": [],
    }
    for _ in range(repeat):
        started = time.perf_counter()
        client.hvals(chain_key(asset))
        samples["HVALS alone"].append(time.perf_counter() - started)
        readers._decoded.clear()
        started = time.perf_counter()
        readers.read_chain(client, asset=asset)
        samples["read_chain, every row decoded"].append(time.perf_counter() - started)
        started = time.perf_counter()
        readers.read_chain(client, asset=asset)
        samples["read_chain, unchanged"].append(time.perf_counter() - started)
    return {label: _p50_p99(values) for label, values in samples.items()}


def _p50_p99(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[int(0.99 * len(ordered))] * 1000


def write_loop(stop_after: float) -> None:
    """Rewrite every row of the chain ``WRITES_PER_SECOND`` times a second, as a busy feed would."""
    import django

    django.setup()
    from ingest.store import write_rows
    from optionsite.redis_client import redis_connection
    from tests.chain.market import INDEX_PRICES, now_ms, quoted_rows, real_contracts

    client = redis_connection()
    contracts = real_contracts(ASSET)
    # Prices move between variants; each write also carries fresh timestamps.
    variants = [
        quoted_rows(contracts, index_price=INDEX_PRICES[ASSET] * (1 + step / 1000), now=now_ms(), seed=step)
        for step in range(8)
    ]
    deadline = time.monotonic() + stop_after
    step = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        now = now_ms()
        rows = [{**row, "ts": now, "received_ts": now + 10} for row in variants[step % len(variants)]]
        pipe = client.pipeline(transaction=False)
        write_rows(pipe, asset=ASSET, rows=rows)  # type: ignore[arg-type]
        pipe.execute()
        step += 1
        time.sleep(max(0.0, 1 / WRITES_PER_SECOND - (time.monotonic() - started)))


def main() -> None:
    from optionsite.devstack import ensured_redis, free_port

    with ensured_redis(os.environ.get("REDIS_URL")) as redis_url, tempfile.TemporaryDirectory() as workdir:
        prefix = f"bench-api-{secrets.token_hex(4)}:"
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "DJANGO_SETTINGS_MODULE": "optionsite.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-" + secrets.token_hex(24),
            "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
            "API_ANON_RATE": "100000000/min",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=BASE_DIR, env=env, check=True)
        try:
            run(env, port=free_port(), log=Path(workdir) / "processes.log")
        finally:
            import redis

            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)


def run(env: dict[str, str], *, port: int, log: Path) -> None:
    import django

    django.setup()
    from optionsite.devstack import web_server_args
    from optionsite.redis_client import redis_connection
    from tests.chain.market import fill_chain, real_contracts, write_status

    client = redis_connection()
    rows = fill_chain(client, asset=ASSET, contracts=real_contracts(ASSET))
    write_contract_hashes(client, rows)
    write_status(client, asset=ASSET)
    url = f"http://127.0.0.1:{port}/api/options/{ASSET}/"
    print(f"chain: {ASSET}, {len(rows)} contracts, every field quoted; {CLIENTS} clients; {DURATION:g} s per run")
    print(f"machine: {os.cpu_count()} CPUs, load average before the run {os.getloadavg()[0]:.2f}")
    for label, (p50, p99) in read_timings(ASSET).items():
        print(f"redis read of the chain, {label:<30} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    daphne = web_server_args(host="127.0.0.1", port=port)
    with running(daphne, env, log) as server:
        wait_until_serving(url)
        with urllib.request.urlopen(url) as response:
            body = response.read()
        print(f"response: {len(body) / 1024:.0f} KiB of JSON per request")
        asyncio.run(closed_loop(url, clients=CLIENTS, duration=3, label="warm-up"))
        measure = Measure(server.pid)
        results = [measure(closed_loop(url, clients=CLIENTS, duration=DURATION, label="closed loop, static chain"))]
        for rate in OPEN_LOOP_RATES:
            label = f"open loop {rate} req/s, static chain"
            results.append(measure(open_loop(url, clients=CLIENTS, rate=rate, duration=DURATION, label=label)))
        writer_seconds = DURATION * (1 + len(OPEN_LOOP_RATES)) + 5
        writer = [
            sys.executable,
            "-c",
            f"from tests.benchmarks.bench_api import write_loop; write_loop({writer_seconds})",
        ]
        with running(writer, env, log):
            time.sleep(1)
            label = f"closed loop, chain rewritten {WRITES_PER_SECOND}/s"
            results.append(measure(closed_loop(url, clients=CLIENTS, duration=DURATION, label=label)))
            for rate in OPEN_LOOP_RATES:
                label = f"open loop {rate} req/s, rewritten {WRITES_PER_SECOND}/s"
                results.append(measure(open_loop(url, clients=CLIENTS, rate=rate, duration=DURATION, label=label)))
        if server.poll() is not None:
            print(f"daphne exited early:\n{log.read_text()}")
        for result in results:
            print(result.line())
        against_bare_daphne(url, server, body, env=env, log=log)


def against_bare_daphne(
    url: str, server: subprocess.Popen[bytes], body: bytes, *, env: dict[str, str], log: Path
) -> None:
    """Closed loops against this web process and bare daphne serving ``body``, taking turns (static chain)."""
    from optionsite.devstack import free_port

    body_file = log.parent / "bare-body.json"
    body_file.write_bytes(body)
    port = free_port()
    bare = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "tests.benchmarks.bare_app:application"]
    bare_url = f"http://127.0.0.1:{port}/"
    with running(bare, {**env, "BARE_BODY": str(body_file)}, log) as reference:
        wait_until_serving(bare_url)
        asyncio.run(closed_loop(bare_url, clients=CLIENTS, duration=2, label="warm-up"))
        ratios, scans, rates = [], [], []
        for turn in range(1, REFERENCE_TURNS + 1):
            scans.append(keys_and_hgetall_rate(ASSET, seconds=REFERENCE_SECONDS))
            print(f"turn {turn}: KEYS + HGETALL per contract, then JSON: {scans[-1]:.1f} chains/s")
            ours = Measure(server.pid)(
                closed_loop(url, clients=CLIENTS, duration=REFERENCE_SECONDS, label=f"turn {turn}: this project")
            )
            theirs = Measure(reference.pid)(
                closed_loop(
                    bare_url, clients=CLIENTS, duration=REFERENCE_SECONDS, label=f"turn {turn}: bare daphne, same bytes"
                )
            )
            ratios.append(ours.rate / theirs.rate)
            rates.append(ours.rate)
            print(ours.line())
            print(theirs.line())
            print(f"turn {turn}: {ratios[-1]:.2f} x bare daphne's req/s")
    print(
        f"requests/s against bare daphne, same bytes, same run: median {statistics.median(ratios):.2f} x",
        "(target >= 0.5 x)",
    )
    served, scanned = statistics.median(rates), statistics.median(scans)
    print(
        f"requests/s against KEYS + HGETALL per contract, same run: {served:.1f} / {scanned:.2f} = "
        f"{served / scanned:.0f} x (target >= 100 x)"
    )


def write_contract_hashes(client: Any, rows: list[Any]) -> None:
    """The per-contract hashes (``FEED_CONTRACT_HASHES=1``'s layout) the dashboards' way reads."""
    from ingest.store import row_commands
    from optionsite.redis_client import execute_packed

    execute_packed(client, row_commands(asset=ASSET, rows=rows, contract_hashes=True))


def keys_and_hgetall_rate(asset: str, *, seconds: float) -> float:
    """Full chains a second read as the dashboards this project replaces read them: ``KEYS <prefix>option:BTC-*``,
    one ``HGETALL`` per contract, the rows encoded as JSON."""
    import json

    from ingest.keys import contract_key
    from optionsite.redis_client import redis_connection, texts

    client = redis_connection()
    pattern = contract_key(f"{asset}-*")
    chains = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        hashes = [client.hgetall(key) for key in client.keys(pattern)]
        rows = [dict(zip(texts(fields), texts(fields.values()), strict=True)) for fields in hashes]
        json.dumps(rows)
        chains += 1
    return chains / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
