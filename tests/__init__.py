"""The test suite (``make test``); the benchmarks under ``tests/benchmarks`` are not tests."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

# The PostgreSQL server the tests that need one use (.ci/run sets it where it starts one).
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432/postgres")


def in_ci() -> bool:
    """``CI=true``: what a developer's machine may lack (Chromium, docker-compose) must be there; a test fails."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def postgres_maintenance() -> psycopg.Connection:
    """An autocommit connection to ``POSTGRES_URL``, to create and drop a test's own database; without a server
    the test is skipped, or fails under ``CI=true``."""
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if in_ci():
            pytest.fail(f"CI=true and PostgreSQL does not answer at {POSTGRES_URL} (TEST_POSTGRES_URL): {exc}")
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_URL} (set TEST_POSTGRES_URL to one that does)")


def postgres_database_url(name: str) -> str:
    """``POSTGRES_URL`` with its database replaced by ``name``."""
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
