"""History benchmark (issue #15): bytes and insert time per snapshot of the largest asset, on SQLite and PostgreSQL.

The largest asset of the real listing (ETH, 822 contracts, ``tests.chain.market.real_contracts`` moved so that the
nearest expiry is two days away, as in tests/history) is written to Redis by the ingest's own writer and its
analytics by ``analytics.publisher``; then ``SNAPSHOTS`` snapshots a minute apart are recorded by
``history.recorder.record_asset_snapshot`` (the Redis read, the parsing and the one transaction, all timed) into a
fresh database: an SQLite file, then a PostgreSQL database of its own (``TEST_POSTGRES_URL``, default the local
server), dropped after. Bytes: SQLite's ``dbstat`` per table and index (and the file), PostgreSQL's
``pg_total_relation_size`` (table, indexes, TOAST). Then half the rows are pruned (``history.retention``) and timed.

Run: ``python -m tests.benchmarks history`` (``BENCH_HISTORY_SNAPSHOTS``, default 200). Figures go to
docs/history.md by hand.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parents[2]
ASSET = "ETH"
TABLES = ("history_contractsnapshot", "history_expirysnapshot", "history_termsnapshot")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432/postgres")


def main() -> None:
    from optionsite.devstack import ensured_redis

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load[0]:.2f} {load[1]:.2f}")
    with ensured_redis(os.environ.get("REDIS_URL")) as redis_url, tempfile.TemporaryDirectory() as directory:
        run_on(f"sqlite:///{Path(directory) / 'history.sqlite3'}", redis_url=redis_url)
        import psycopg

        try:
            maintenance = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            print(f"PostgreSQL: not measured, nothing answers at {POSTGRES_URL}: {exc}")
            return
        name = f"bench_history_{secrets.token_hex(4)}"
        parts = urlsplit(POSTGRES_URL)
        with maintenance:
            maintenance.execute(f'CREATE DATABASE "{name}"')
            try:
                run_on(urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", "")), redis_url=redis_url)
            finally:
                maintenance.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_on(database_url: str, *, redis_url: str) -> None:
    """``measure()`` in a process of its own: Django reads ``DATABASE_URL`` once per process."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"bench-history-{secrets.token_hex(4)}:",
        "DJANGO_SETTINGS_MODULE": "optionsite.settings",
        "DJANGO_DEBUG": "1",
        "LOG_LEVEL": "WARNING",
    }
    code = "from tests.benchmarks.bench_history import measure; measure()"
    subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, check=True)


def measure() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from analytics.publisher import AnalyticsPublisher
    from history.models import ContractSnapshot
    from history.recorder import record_asset_snapshot, snapshot_time
    from history.retention import prune_older
    from ingest.store import purge_asset
    from optionsite.clock import now_ms
    from optionsite.redis_client import execute_packed, redis_connection
    from tests.chain.market import fill_chain
    from tests.history.conftest import near_contracts

    snapshots = int(os.environ.get("BENCH_HISTORY_SNAPSHOTS", "200"))
    call_command("migrate", verbosity=0)
    client = redis_connection()
    rows = fill_chain(client, asset=ASSET, contracts=near_contracts(ASSET, limit_expiries=None))
    publisher = AnalyticsPublisher(ASSET)
    start = snapshot_time(now=datetime.now(UTC), interval=60) - timedelta(minutes=snapshots)
    empty = database_bytes()
    seconds = []
    try:
        for number in range(snapshots):
            # Fresh analytics for each snapshot (not timed): the recorder refuses any older than 3 intervals.
            publication = publisher.due(rows, now=float(number * 2), now_ms=now_ms())
            assert publication is not None
            execute_packed(client, publication.commands)
            publisher.published(publication, now=float(number * 2))
            publisher.chain_changed()
            began = time.perf_counter()
            counts = record_asset_snapshot(
                client=client, asset=ASSET, taken_at=start + timedelta(minutes=number), interval=60
            )
            seconds.append(time.perf_counter() - began)
    finally:
        purge_asset(client, asset=ASSET)
    full = database_bytes()
    per_day = 24 * 60
    print(
        f"== {connection.vendor}: {snapshots} snapshots of {ASSET}, each {counts.contracts} contract rows, "
        f"{counts.expiries} expiry rows, {counts.maturities} constant-maturity rows"
    )
    print(
        f"   record_asset_snapshot: median {statistics.median(seconds) * 1000:.0f} ms, "
        f"p90 {statistics.quantiles(seconds, n=10)[-1] * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms"
    )
    for table, size in full.items():
        grown = size - empty[table]
        print(
            f"   {table}: {grown / snapshots / 1024:.1f} KiB per snapshot, "
            f"{grown / snapshots * per_day / 2**20:.1f} MiB per day at one a minute"
        )
    total = sum(full.values()) - sum(empty.values())
    print(f"   all: {total / snapshots / 1024:.1f} KiB per snapshot, {total / snapshots * per_day / 2**20:.1f} MiB/day")
    rows_before = ContractSnapshot.objects.count()
    began = time.perf_counter()
    deleted = prune_older(ContractSnapshot, before=start + timedelta(minutes=snapshots // 2), batch=20_000)
    elapsed = time.perf_counter() - began
    print(
        f"   pruning {deleted} of {rows_before} contract rows: {elapsed:.2f} s, "
        f"{elapsed / max(deleted, 1) * 20_000 * 1000:.0f} ms per 20,000-row batch"
    )


def database_bytes() -> dict[str, int]:
    """Bytes of each history table with its indexes: SQLite's pages (``dbstat``), PostgreSQL's relation sizes."""
    from django.db import connection

    sizes: dict[str, int] = dict.fromkeys(TABLES, 0)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name, tbl_name FROM sqlite_master WHERE tbl_name LIKE 'history_%'")
            owners = dict(cursor.fetchall())
            cursor.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            for name, size in cursor.fetchall():
                if owners.get(name) in sizes:
                    sizes[owners[name]] += int(size)
        else:
            for table in TABLES:
                cursor.execute("SELECT pg_total_relation_size(%s)", [table])
                sizes[table] = int(cursor.fetchone()[0])
    return sizes
