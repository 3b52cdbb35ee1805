"""Bad configuration stops the process with one line that names the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def run_check(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "BYBIT_"))}
    env.update({"DJANGO_DEBUG": "1", "DATABASE_URL": "sqlite:///:memory:"})
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_it_passes_with_the_defaults() -> None:
    result = run_check()
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY is not set"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG='maybe' is not a boolean"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL='http://127.0.0.1:6379' must start with one of redis://"),
        ({"REDIS_URL": "redis://127.0.0.1:port/0"}, "REDIS_URL='redis://127.0.0.1:port/0' is not a valid URL"),
        (
            {"BYBIT_WS_URL": "wss://stream.bybit.com/v5/private"},
            "BYBIT_WS_URL='wss://stream.bybit.com/v5/private' must contain /v5/public",
        ),
        (
            {"BYBIT_REST_URL": "ftp://api.bybit.com"},
            "BYBIT_REST_URL='ftp://api.bybit.com' must start with one of http://",
        ),
        ({"DATABASE_URL": "nosuchdb://localhost/x"}, "DATABASE_URL='nosuchdb://localhost/x' is not a database URL"),
        ({"FEED_FLUSH_INTERVAL": "fast"}, "FEED_FLUSH_INTERVAL='fast' is not a number"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' must be one of"),
        ({"DJANGO_SECURE_SSL_REDIRECT": "always"}, "DJANGO_SECURE_SSL_REDIRECT='always' is not a boolean"),
        ({"DJANGO_SECURE_COOKIES": "secure"}, "DJANGO_SECURE_COOKIES='secure' is not a boolean"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "1y"}, "DJANGO_SECURE_HSTS_SECONDS='1y' is not a whole number"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "-1"}, "DJANGO_SECURE_HSTS_SECONDS=-1 is out of range"),
        ({"DJANGO_SECURE_HSTS_PRELOAD": "maybe"}, "DJANGO_SECURE_HSTS_PRELOAD='maybe' is not a boolean"),
        (
            {"DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"},
            "DJANGO_SECURE_PROXY_SSL_HEADER='X-Forwarded-Proto' must be",
        ),
        (
            {"DJANGO_SECURE_PROXY_SSL_HEADER": "X_FORWARDED_PROTO,https"},
            "DJANGO_SECURE_PROXY_SSL_HEADER='X_FORWARDED_PROTO,https' must be",
        ),
    ],
)
def test_it_names_the_variable_of_a_bad_value(overrides: dict[str, str | None], message: str) -> None:
    result = run_check(**overrides)
    assert result.returncode == 2
    assert result.stderr.startswith(f"Configuration error: {message}")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_it_reports_an_unreachable_redis_as_a_check_error() -> None:
    result = run_check(REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 1
    assert "optionsite.E001" in result.stderr
    assert "REDIS_URL='redis://127.0.0.1:1/0' does not answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_requires_no_secret_key_in_debug() -> None:
    assert run_check(DJANGO_DEBUG="1", DJANGO_SECRET_KEY=None).returncode == 0


def test_it_serves_plain_http_by_default() -> None:
    """A laptop over http: no redirect, no secure-only cookie, no HSTS, no proxy header trusted."""
    from django.conf import settings

    if any(name.startswith("DJANGO_SECURE_") for name in os.environ):
        pytest.skip("the environment sets DJANGO_SECURE_* variables")
    assert settings.SECURE_SSL_REDIRECT is False
    assert settings.SESSION_COOKIE_SECURE is False
    assert settings.CSRF_COOKIE_SECURE is False
    assert settings.SECURE_HSTS_SECONDS == 0
    assert settings.SECURE_PROXY_SSL_HEADER is None
