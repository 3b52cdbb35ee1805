"""The process-wide Redis client and the key prefix every key of this project carries."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import redis
from django.conf import settings


def redis_connection() -> redis.Redis:
    """A client for ``settings.REDIS_URL`` (thread-safe, pooled, one per URL per process)."""
    return _client(settings.REDIS_URL)


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5)


def texts(values: Iterable[Any]) -> list[str]:
    """Decode what a Redis read returned (bytes with this client) into strings."""
    return [value.decode() if isinstance(value, bytes) else str(value) for value in values]


def redis_key(*parts: str) -> str:
    """``redis_key("option", "BTC-26DEC25-65000-C")`` → ``optionsite:option:BTC-26DEC25-65000-C``."""
    return settings.REDIS_KEY_PREFIX + ":".join(parts)
