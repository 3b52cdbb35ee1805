"""The recording and pruning tests again, on PostgreSQL: ``test_recorder.py`` and ``test_retention.py`` in a pytest
of their own whose ``DATABASE_URL`` is the server at ``TEST_POSTGRES_URL`` (default: the local server's ``postgres``
database). pytest-django creates its test database there (``test_<name>``) and drops it after; this test drops it
too should that run die. Without a server answering it is skipped, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests import postgres_database_url, postgres_maintenance

BASE_DIR = Path(__file__).resolve().parents[2]
MODULES = ("tests/history/test_recorder.py", "tests/history/test_retention.py")


@pytest.mark.skipif(connection.vendor == "postgresql", reason="this run is on PostgreSQL already")
def test_the_recording_and_pruning_tests_pass_on_postgresql() -> None:
    maintenance = postgres_maintenance()
    name = f"optionsite_history_{secrets.token_hex(4)}"
    database_url = postgres_database_url(name)
    with maintenance:
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pytest", *MODULES, "-q", "-p", "no:cacheprovider"],
                cwd=BASE_DIR,
                env={**os.environ, "DATABASE_URL": database_url},
                capture_output=True,
                text=True,
                timeout=240,
            )
        finally:
            maintenance.execute(f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout, result.stdout[-2000:]
    assert "skipped" not in result.stdout, result.stdout[-2000:]
