"""Ingest benchmark: 2,000 contracts x 10 pushes/s from the simulator's bench mode into Redis.

Three parts, each against a simulator in a process of its own (so that the generator does
not share a core's time with the consumer):

1. pybit alone: one ``OptionSocket`` whose frame handler only counts, the simulator pushing
   as fast as the socket drains: the ceiling of the receive path on this machine.
2. the feed at 20,000 msg/s for ``BENCH_SECONDS`` (default 60): messages processed per
   second, whether it keeps up (received vs sent, lag trend), freshness lag (exchange ``ts``
   → the flush pipeline that made it visible in Redis has completed) p50/p99, CPU, peak RSS.
3. the highest rate it keeps up with: short steps at rising rates.

Run: ``make bench`` or ``python -m tests.benchmarks ingest``. Figures go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from array import array
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psutil

from optionsite.devstack import ensured_redis

CONTRACTS = 2000


def bench_symbols(today: date) -> list[str]:
    """2,000 BTC contracts: 5 Friday expiries x 100 strikes x call/put x USDT/USDC."""
    friday = today + timedelta(days=(4 - today.weekday()) % 7 + 7)
    expiries = [friday + timedelta(weeks=week) for week in range(5)]
    from ingest.symbols import format_symbol

    return [
        format_symbol(base="BTC", expiry=expiry, strike=60_000 + 1_000 * step, option_type=kind, settle=settle)
        for expiry in expiries
        for step in range(100)
        for kind in ("call", "put")
        for settle in ("USDT", "USDC")
    ]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def pybit_alone(symbols_file: Path, seconds: float) -> dict[str, float]:
    from ingest.bybit import OptionSocket
    from ingest.connections import subscription_requests
    from ingest.simulator import SimulatorConfig, run_simulator_process

    config = SimulatorConfig(assets=("BTC",), symbols_file=symbols_file, bench=True, rate_hz=0, log_level="WARNING")
    with run_simulator_process(config) as simulator:
        count = [0]

        def on_frame(frame: dict[str, Any]) -> None:
            count[0] += 1

        socket = OptionSocket(url=simulator.ws_url, on_frame=on_frame, on_bad_frame=lambda why: None)
        socket.open()
        topics = [f"tickers.{symbol}" for symbol in simulator.live_symbols("BTC")[:CONTRACTS]]
        for chunk in subscription_requests(topics, per_request=500, max_chars=21_000):
            socket.send_json({"op": "subscribe", "args": chunk})
        time.sleep(2)
        me = psutil.Process()
        start_count, start_cpu, started = count[0], cpu_seconds(me), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        received = count[0] - start_count
        cpu = cpu_seconds(me) - start_cpu
        socket.close()
    return {"msg_per_s": received / elapsed, "cpu_us_per_msg": cpu / max(received, 1) * 1e6}


class Run:
    """One feed run against a simulator pushing at ``rate_hz`` per contract."""

    def __init__(self, symbols_file: Path, rate_hz: float, seconds: float, warmup: float = 5.0) -> None:
        self.symbols_file = symbols_file
        self.rate_hz = rate_hz
        self.seconds = seconds
        self.warmup = warmup
        # Compact arrays, so that the harness does not inflate the RSS it measures.
        self.lag_at = array("d")  # monotonic time of the flush
        self.lags = array("d")  # exchange ts → written, ms
        self.samples: list[dict[str, float]] = []
        self._measuring = False

    def observe(self, rows: list[Any], written_ms: int) -> None:
        if not self._measuring:
            return
        now = time.monotonic()
        self.lags.extend(written_ms - row["ts"] for row in rows)
        self.lag_at.extend(now for _ in rows)

    def run(self) -> dict[str, Any]:
        from django.conf import settings

        from ingest.bybit import fetch_option_contracts
        from ingest.feed import AssetFeed, FeedSettings
        from ingest.simulator import SimulatorConfig, run_simulator_process
        from ingest.store import purge_asset
        from optionsite.redis_client import redis_connection

        config = SimulatorConfig(
            assets=("BTC",), symbols_file=self.symbols_file, bench=True, rate_hz=self.rate_hz, log_level="WARNING"
        )
        client = redis_connection()
        with run_simulator_process(config) as simulator:
            feed = AssetFeed(
                asset="BTC",
                settings=FeedSettings(
                    ws_url=simulator.ws_url, rest_url=simulator.rest_url, flush_interval=settings.FEED_FLUSH_INTERVAL
                ),
                client=client,
                channel_layer=None,
                flush_observer=self.observe,
                # The simulator lists its own expiry ladder on top of the file: take exactly 2,000.
                fetch_contracts=lambda: fetch_option_contracts(asset="BTC", rest_url=simulator.rest_url)[:CONTRACTS],
            )
            thread = threading.Thread(target=feed.run, daemon=True)
            thread.start()
            time.sleep(self.warmup)
            me = psutil.Process()
            self._measuring = True
            start_received = sum(shard.messages for shard in feed.shards)
            start_sent = simulator.state()["messages_sent"]
            start_cpu, started = cpu_seconds(me), time.monotonic()
            peak_rss = me.memory_info().rss
            while time.monotonic() - started < self.seconds:
                time.sleep(1)
                peak_rss = max(peak_rss, me.memory_info().rss)
            elapsed = time.monotonic() - started
            received = sum(shard.messages for shard in feed.shards) - start_received
            state = simulator.state()
            sent = state["messages_sent"] - start_sent
            cpu = cpu_seconds(me) - start_cpu
            self._measuring = False
            feed.stop()
            thread.join(timeout=15)
        purge_asset(client, asset="BTC")
        lags = list(self.lags)
        third = elapsed / 3
        first = [lag for at, lag in zip(self.lag_at, self.lags, strict=True) if at - started < third]
        last = [lag for at, lag in zip(self.lag_at, self.lags, strict=True) if at - started > 2 * third]
        return {
            "contracts": feed.status.instruments,
            "rate_hz": self.rate_hz,
            "sent_per_s": sent / elapsed,
            "received_per_s": received / elapsed,
            "skipped_by_simulator": state.get("messages_skipped", 0),
            "lag_p50_ms": percentile(lags, 0.50),
            "lag_p99_ms": percentile(lags, 0.99),
            "lag_p99_first_third_ms": percentile(first, 0.99),
            "lag_p99_last_third_ms": percentile(last, 0.99),
            "rows_written_per_s": len(lags) / elapsed,
            "cpu_percent": 100 * cpu / elapsed,
            "peak_rss_mb": peak_rss / 2**20,
        }


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "60"))
    os.environ["REDIS_KEY_PREFIX"] = f"bench-{secrets.token_hex(3)}:"
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "optionsite.settings"
    with ensured_redis(os.environ.get("REDIS_URL")) as redis_url, TemporaryDirectory() as tmp:
        os.environ["REDIS_URL"] = redis_url
        import django

        django.setup()
        symbols_file = Path(tmp) / "symbols.txt"
        symbols_file.write_text("\n".join(bench_symbols(datetime.now(UTC).date())))
        cores = os.cpu_count()
        print(f"machine: {cores} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; {datetime.now(UTC):%Y-%m-%d}")

        alone = pybit_alone(symbols_file, seconds=10)
        print(f"pybit alone (count only): {alone['msg_per_s']:,.0f} msg/s, {alone['cpu_us_per_msg']:.1f} µs CPU/msg")

        result = Run(symbols_file, rate_hz=10, seconds=seconds).run()
        print(f"feed, {CONTRACTS} contracts x 10/s for {seconds:.0f} s:")
        for key, value in result.items():
            print(f"  {key}: {value:,.1f}" if isinstance(value, float) else f"  {key}: {value}")

        print("ceiling (10 s steps):")
        for rate in (15, 20, 25, 30):
            step = Run(symbols_file, rate_hz=rate, seconds=10).run()
            keeps_up = step["received_per_s"] >= 0.99 * step["sent_per_s"] and step["lag_p99_ms"] <= 300
            print(
                f"  {rate * CONTRACTS:>6,} msg/s offered: sent {step['sent_per_s']:,.0f}/s, received "
                f"{step['received_per_s']:,.0f}/s, lag p50 {step['lag_p50_ms']:.0f} ms "
                f"p99 {step['lag_p99_ms']:.0f} ms, "
                f"CPU {step['cpu_percent']:.0f} % -> {'keeps up' if keeps_up else 'falls behind'}"
            )


if __name__ == "__main__":
    main()
