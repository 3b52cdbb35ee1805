"""The test suite (``make test``); the benchmarks under ``tests/benchmarks`` are not tests."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """``CI=true``: what a developer's machine may lack (Chromium, docker-compose) must be there; a test fails."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
