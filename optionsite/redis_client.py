"""The process-wide Redis client and the key prefix every key of this project carries."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio
from django.conf import settings

# A command and its arguments, as hiredis packs them: ("HSET", key, field, value, ...).
RedisCommand = tuple[str | bytes | int | float, ...]


def redis_connection() -> redis.Redis:
    """A client for ``settings.REDIS_URL`` (thread-safe, pooled, one per URL per process)."""
    return _client(settings.REDIS_URL)


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5)


# An asyncio client's connections belong to the event loop they were made on: one client per loop (daphne
# runs one; tests start one per test), forgotten with its loop.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = weakref.WeakKeyDictionary()


def async_redis_connection() -> redis.asyncio.Redis:
    """An asyncio client for ``settings.REDIS_URL``, pooled, for the running event loop.

    Making a connection costs more than using one (redis-py reads its own package metadata for
    each), so code on the event loop shares this pool instead of opening a client per read.
    """
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # No read timeout: on a saturated event loop a reply read late is not Redis gone (it would close
        # viewers with 4503); an unreachable Redis fails the connection, and connecting has its timeout.
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5)
        _async_clients[loop] = client
    return client


def texts(values: Iterable[Any]) -> list[str]:
    """Decode what a Redis read returned (bytes with this client) into strings."""
    return [value.decode() if isinstance(value, bytes) else str(value) for value in values]


def redis_key(*parts: str) -> str:
    """``redis_key("option", "BTC-26DEC25-65000-C")`` → ``optionsite:option:BTC-26DEC25-65000-C``."""
    return settings.REDIS_KEY_PREFIX + ":".join(parts)


def execute_packed(client: redis.Redis, commands: Sequence[RedisCommand]) -> list[Any]:
    """Run ``commands`` like a pipeline without a transaction: one write, then every reply.

    What a redis-py pipeline does, without its Python layers per command (argument checks,
    a packing generator, response callbacks): the feed sends ~2,000 commands every 0.25 s,
    and those layers were half the cost of its writes (docs/benchmarks.md). Commands are
    packed by hiredis, the C library redis-py itself packs with. Raises the first error
    reply after reading every reply, so that the connection stays in step.
    """
    if not commands:
        return []
    packed = b"".join([hiredis.pack_command(command) for command in commands])  # type: ignore[arg-type]
    pool = client.connection_pool
    connection = pool.get_connection()
    replies: list[Any] = []
    error: redis.ResponseError | None = None
    try:
        connection.send_packed_command([packed])
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
                error = error or exc
    except BaseException:
        connection.disconnect()  # replies may be left unread: never hand the connection on
        raise
    finally:
        pool.release(connection)
    if error is not None:
        raise error
    return replies
