"""Test-run configuration: a real Redis, isolated by database number and key prefix.

Settings are read from the environment, so the Redis URL and the key prefix are settled
here, in ``pytest_configure``, before pytest-django loads ``optionsite.settings``.
Tests use database 15 of the Redis at ``REDIS_URL`` when one answers (else a private
redis-server started for the run) and a key prefix unique to the run; at the end only
keys under that prefix are deleted.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis as redis_lib

from optionsite.devstack import DEFAULT_REDIS_URL, PrivateRedis, redis_answers
from tests import in_ci
from tests.browser import CHROMIUM, chromium_installed

TEST_REDIS_DB = 15
_private_redis: PrivateRedis | None = None

_browser_tests_left_out = 0


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def pytest_configure(config: pytest.Config) -> None:
    global _private_redis
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    if not redis_answers(url):
        _private_redis = PrivateRedis.start()
        url = _private_redis.url
    os.environ["REDIS_URL"] = _with_db(url, TEST_REDIS_DB)
    for variable in ("CACHE_REDIS_URL", "CHANNEL_LAYER_REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(variable, None)
    os.environ["REDIS_KEY_PREFIX"] = f"test-{secrets.token_hex(4)}:"
    os.environ["DJANGO_SETTINGS_MODULE"] = "optionsite.settings"
    os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-" + secrets.token_hex(16))
    os.environ.setdefault("DJANGO_DEBUG", "0")
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018 - loads the settings so pytest-django sets Django up


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium, outside CI, leave the browser tests out (said once at the end); with ``CI=true`` they
    stay in and fail, so that CI never passes without them."""
    global _browser_tests_left_out
    if chromium_installed() or in_ci():
        return
    browser_tests = [item for item in items if item.get_closest_marker("browser")]
    if browser_tests:
        _browser_tests_left_out = len(browser_tests)
        config.hook.pytest_deselected(items=browser_tests)
        items[:] = [item for item in items if not item.get_closest_marker("browser")]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _browser_tests_left_out:
        terminalreporter.write_line(
            f"{_browser_tests_left_out} browser tests not run: no Chromium at {CHROMIUM} "
            "(to run them: apt-get install chromium, or set CHROMIUM_PATH)",
            yellow=True,
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _private_redis is not None:
        _private_redis.stop()


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis_lib.Redis]:
    """The test Redis; every key written under the run's prefix is deleted at the end."""
    from django.conf import settings

    client = redis_lib.Redis.from_url(settings.REDIS_URL)
    yield client
    keys = list(client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(autouse=True)
def _redis_cleaned_after_session(redis_client: redis_lib.Redis) -> None:
    """Make every test depend on the session's Redis, so the cleanup always runs."""
