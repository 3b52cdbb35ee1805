"""Analytics benchmark (issue #14): what the feed's analytics cost, against references measured in the same run.

1. **Computation against the feed's own flush.** The largest asset of the real listing
   (``tests.chain.market.real_contracts``, quoted through the ingest's own normalisation), in turns: the flush's
   write of the whole chain, as ``Flusher.flush`` does when every contract changed (each row encoded,
   ``row_commands``, the status, ``execute_packed`` into a Redis key prefix of this run's own), then
   ``analytics.publisher.compute_analytics`` of the same rows (every measure, asset and expiries, as JSON).
   Median of each over ``TURNS`` turns; target: analytics at most 0.5 x the flush.
2. **The live push with analytics on and off.** ``bench_live`` (BTC at ~6,000 msg/s, 100 viewers) run with
   ``FEED_ANALYTICS=0`` and ``=1`` in alternation, ``ROUNDS`` rounds: daphne's and the feed's CPU. Target: daphne
   with analytics at most 1.10 x without.

Run: ``python -m tests.benchmarks analytics`` (``BENCH_SECONDS`` per ``bench_live`` run, default 20;
``BENCH_ANALYTICS_ROUNDS``, default 2; 0 skips part 2). Figures go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
TURNS = 30
ASSETS = ("BTC", "ETH", "SOL")


def main() -> None:
    from optionsite.devstack import ensured_redis

    print(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.2f}")
    with ensured_redis(os.environ.get("REDIS_URL")) as redis_url:
        prefix = f"bench-analytics-{secrets.token_hex(4)}:"
        os.environ.update(
            {
                "REDIS_URL": redis_url,
                "REDIS_KEY_PREFIX": prefix,
                "DJANGO_SETTINGS_MODULE": "optionsite.settings",
                "DJANGO_DEBUG": "1",
            }
        )
        import django

        django.setup()
        from optionsite.redis_client import redis_connection

        try:
            computation_against_flush()
        finally:
            client = redis_connection()
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
    rounds = int(os.environ.get("BENCH_ANALYTICS_ROUNDS", "2"))
    if rounds:
        live_push_with_and_without(rounds)


def computation_against_flush() -> None:
    import orjson

    from analytics.publisher import compute_analytics
    from ingest.status import FeedStatus
    from ingest.store import feed_status_command, row_commands
    from optionsite.clock import now_ms
    from optionsite.redis_client import execute_packed, redis_connection
    from tests.chain.market import quoted_rows, real_contracts

    chains = {asset: real_contracts(asset) for asset in ASSETS}
    asset = max(chains, key=lambda name: len(chains[name]))
    rows = quoted_rows(chains[asset], index_price=110_000.0 if asset == "BTC" else 4_000.0, now=now_ms())
    client = redis_connection()
    status = FeedStatus(asset=asset, state="live")

    def flush() -> None:
        rows_json = [orjson.dumps(row) for row in rows]
        commands = row_commands(asset=asset, rows=rows, rows_json=rows_json)
        commands.append(feed_status_command(asset=asset, status=status.to_redis()))
        execute_packed(client, commands)

    def analytics() -> None:
        compute_analytics(rows=rows, now_ms=now_ms())

    flush()  # warm both
    analytics()
    flushes: list[float] = []
    computations: list[float] = []
    for _ in range(TURNS):
        for timings, work in ((flushes, flush), (computations, analytics)):
            started = time.perf_counter()
            work()
            timings.append(time.perf_counter() - started)
    flush_ms, analytics_ms = statistics.median(flushes) * 1000, statistics.median(computations) * 1000
    published = compute_analytics(rows=rows, now_ms=now_ms())
    size = len(published.asset_json) + sum(len(value) for value in published.expiries_json.values())
    print(f"chain: {asset}, {len(rows):,} contracts (the largest of {', '.join(ASSETS)}); {TURNS} turns, alternated")
    spread = f"p10 {_p(flushes, 10):.1f}, p90 {_p(flushes, 90):.1f}"
    print(f"  the feed's flush of the whole chain: median {flush_ms:.1f} ms ({spread})")
    print(
        f"  analytics, asset and {len(published.expiries_json)} expiries: median {analytics_ms:.1f} ms "
        f"(p10 {_p(computations, 10):.1f}, p90 {_p(computations, 90):.1f}); {size / 1024:.0f} KiB of JSON"
    )
    verdict = "met" if analytics_ms <= 0.5 * flush_ms else "missed"
    print(f"  ratio analytics / flush: {analytics_ms / flush_ms:.2f} (target <= 0.5: {verdict})")


def _p(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100)[percent - 1] * 1000


DAPHNE_CPU = re.compile(r"daphne: CPU (\d+) % of one core")
FEED_CPU = re.compile(r"feed (\d+) %")


def live_push_with_and_without(rounds: int) -> None:
    seconds = os.environ.get("BENCH_SECONDS", "20")
    print(f"live push (bench_live, BENCH_SECONDS={seconds}), analytics off and on, {rounds} rounds:")
    cpu: dict[str, list[tuple[int, int]]] = {"0": [], "1": []}
    for number in range(1, rounds + 1):
        for setting in ("0", "1"):
            env = {**os.environ, "FEED_ANALYTICS": setting, "BENCH_SECONDS": os.environ.get("BENCH_SECONDS", "20")}
            env.pop("REDIS_KEY_PREFIX", None)
            started = datetime.now(UTC)
            output = subprocess.run(
                [sys.executable, "-m", "tests.benchmarks", "live"],
                cwd=BASE_DIR,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            daphne, feed = DAPHNE_CPU.search(output), FEED_CPU.search(output)
            if daphne is None or feed is None:
                print(output)
                raise RuntimeError("bench_live printed no CPU figures")
            cpu[setting].append((int(daphne.group(1)), int(feed.group(1))))
            p99 = re.search(r"all: .*p99 (\d+) ms", output)
            print(
                f"  round {number}, analytics {'on ' if setting == '1' else 'off'} ({started:%H:%M:%S}): daphne "
                f"{daphne.group(1)} %, feed {feed.group(1)} % of a core; viewers p99 {p99.group(1) if p99 else '?'} ms"
            )
    off, on = (statistics.median(web for web, _ in cpu[setting]) for setting in ("0", "1"))
    feed_off, feed_on = (statistics.median(feed for _, feed in cpu[setting]) for setting in ("0", "1"))
    verdict = "met" if on <= 1.10 * off else "missed"
    print(f"  daphne, median: {off:.0f} % off, {on:.0f} % on: {on / off:.2f} x (target <= 1.10: {verdict})")
    print(f"  feed, median: {feed_off:.0f} % off, {feed_on:.0f} % on: {feed_on / feed_off:.2f} x")
