"""A Redis lease: at most one holder of a name at a time, lost if not renewed in time.

The feed of an asset runs only while its worker holds the asset's lease; a worker that
dies (even ``kill -9``) stops renewing, the lease expires, and the next dispatch gives the
asset to another worker.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

logger = logging.getLogger(__name__)

# Renew or release only while the lease still holds our token, atomically.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class Lease:
    def __init__(self, client: redis.Redis, *, key: str, token: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.token = token
        self.ttl_ms = int(ttl * 1000)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> bool:
        return bool(self.client.eval(_RELEASE, 1, self.key, self.token))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return None if value is None else value.decode() if isinstance(value, bytes) else str(value)


class LeaseKeeper(threading.Thread):
    """Renews a held lease every third of its TTL; ``held()`` turns false once it is lost.

    A renewal that fails because Redis is unreachable is retried; the lease counts as lost
    once a full TTL has passed since the last successful renewal (it has expired by then).
    ``held()`` applies that deadline itself, at once: when Redis comes back after a longer
    outage, the holder must not write a single time before its next renewal finds the lease
    gone (another worker may own the asset by then).
    """

    def __init__(self, lease: Lease) -> None:
        super().__init__(name=f"lease-{lease.key}", daemon=True)
        self.lease = lease
        self._lost = threading.Event()
        self._stopping = threading.Event()
        # Taken before each renewal is sent, so that it is never later than when Redis restarted the TTL.
        self._renewed_at = time.monotonic()

    def held(self) -> bool:
        return not self._lost.is_set() and time.monotonic() - self._renewed_at < self.lease.ttl_ms / 1000

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)

    def run(self) -> None:
        interval = self.lease.ttl_ms / 3000
        while not self._stopping.wait(interval):
            attempted = time.monotonic()
            try:
                if not self.lease.renew():
                    logger.warning("lease %s was taken over", self.lease.key)
                    self._lost.set()
                    return
                self._renewed_at = attempted
            except redis.RedisError as exc:
                if time.monotonic() - self._renewed_at > self.lease.ttl_ms / 1000:
                    logger.warning("lease %s expired while Redis was unreachable: %s", self.lease.key, exc)
                    self._lost.set()
                    return
