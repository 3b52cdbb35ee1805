"""Rate limits counted in Redis, one round-trip per check, and who "the client" is for each of them.

DRF's ``AnonRateThrottle`` keeps each client's request timestamps as a pickled list in the
cache, read and written back whole on every request: two round-trips and, at the default
1,200/min, a list of up to 1,200 floats pickled twice per request (it was the largest
single cost of serving the full chain; see docs/benchmarks.md). Two processes writing the
list back at once also lose each other's requests.

These limits keep a sliding-window counter instead: one ``INCR`` per event on the counter
of the current window, and the previous window's count weighted by how much of it still
lies within the last ``duration`` seconds. Counters are atomic, so every daphne process
shares one count per client. The anonymous throttle below counts every request, refused
ones too: a client that keeps sending while refused stays refused until it slows down.
Failed logins are counted with the same counters (``optionsite.login_throttle``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle

from optionsite.redis_client import RedisCommand, execute_packed, redis_connection, redis_key

# The longest text of an IP address: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
_LONGEST_ADDRESS = 45


# Where ``chain.answer_cache`` leaves the count it made of a request it then passed to Django: the throttle
# uses it instead of counting the request a second time.
PRECOUNTED = "optionsite.throttle_count"


def client_address(request: HttpRequest | Request) -> str:
    """The address every per-client limit counts a request under (``address_from``)."""
    meta = request.META
    return address_from(remote=meta.get("REMOTE_ADDR") or "", forwarded=meta.get("HTTP_X_FORWARDED_FOR"))


def address_from(*, remote: str, forwarded: str | None) -> str:
    """The address every per-client limit counts a request from ``remote`` with ``X-Forwarded-For: forwarded`` under.

    The socket's peer (``REMOTE_ADDR``) unless ``API_TRUSTED_PROXIES`` says that many reverse
    proxies append to ``X-Forwarded-For``: then the address the outermost of them saw, the
    N-th from the right, which no client can forge (the header's other entries are whatever
    the client sent). With fewer entries than proxies, the leftmost, as DRF's ``NUM_PROXIES``
    takes it. It may be any text (a proxy can be misconfigured): key a count with ``client_key``.
    """
    proxies: int = settings.API_TRUSTED_PROXIES
    if proxies == 0 or not forwarded:
        return remote
    addresses = forwarded.split(",")
    return addresses[-min(proxies, len(addresses))].strip() or remote


def client_key(text: str) -> str:
    """``text`` for a Redis key: an IP address as itself (readable), anything else as a short hash, so that
    what a client sends never makes a key long."""
    if len(text) <= _LONGEST_ADDRESS:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
    return short_hash(text)


def short_hash(text: str) -> str:
    """128 bits of ``text``'s SHA-256, in hex: a key part of fixed size for any text."""
    return "h" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class WindowCount:
    """A sliding-window counter at one moment: ``current`` events so far in this window, ``previous`` in the
    one before, ``elapsed`` seconds into this one, of ``duration``."""

    current: int
    previous: int
    elapsed: float
    duration: int

    def weighed(self) -> float:
        """The events of the last ``duration`` seconds, the previous window's weighed by how much of it is in them."""
        return self.previous * (1 - self.elapsed / self.duration) + self.current

    def seconds_until_one_more(self, *, limit: int) -> float | None:
        """Whole seconds until one more event keeps ``weighed()`` within ``limit`` (a ``Retry-After``)."""
        duration, elapsed = self.duration, self.elapsed
        if limit < 1:
            return None
        room = limit - self.current - 1
        if room >= 0 and self.previous > 0:
            # Still in this window, once enough of the previous one has slid out of the last period.
            within = duration * (1 - room / self.previous) - elapsed
            if within < duration - elapsed:
                return _whole_seconds(within)
        # In the next window, once enough of this one has slid out.
        slide = duration * (1 - (limit - 1) / self.current) if self.current else 0.0
        return _whole_seconds(duration - elapsed + max(0.0, slide))


def count_events(*, names: Sequence[str], duration: int, now: float) -> list[WindowCount]:
    """Count one event on each of the counters ``names`` and say what each holds then (one round-trip).

    Keys: ``<prefix><name>:<window>`` (a string counter), where ``<window>`` is the Unix time
    divided by ``duration``; each lives two windows. Raises ``redis.RedisError``.
    """
    replies = execute_packed(redis_connection(), window_commands(names=names, duration=duration, now=now))
    return window_counts(replies, duration=duration, now=now)


def window_commands(*, names: Sequence[str], duration: int, now: float) -> list[RedisCommand]:
    """The commands of ``count_events``, three per counter, for a caller that sends them itself."""
    window = int(now // duration)
    commands: list[RedisCommand] = []
    for name in names:
        current = redis_key(f"{name}:{window}")
        commands += [("INCR", current), ("EXPIRE", current, 2 * duration), ("GET", redis_key(f"{name}:{window - 1}"))]
    return commands


def window_counts(replies: Sequence[Any], *, duration: int, now: float) -> list[WindowCount]:
    """What the replies to ``window_commands`` (same ``duration`` and ``now``) say each counter holds."""
    elapsed = now % duration
    return [
        WindowCount(int(count), int(before or 0), elapsed, duration)
        for count, before in zip(replies[0::3], replies[2::3], strict=True)
    ]


def read_counts(*, names: Sequence[str], duration: int, now: float) -> list[WindowCount]:
    """What each of the counters ``names`` holds, counting nothing (one round-trip). Raises ``redis.RedisError``."""
    window, elapsed = divmod(now, duration)
    keys = [redis_key(f"{name}:{int(window) - back}") for name in names for back in (0, 1)]
    replies = redis_connection().mget(keys)
    return [
        WindowCount(int(count or 0), int(before or 0), elapsed, duration)
        for count, before in zip(replies[0::2], replies[1::2], strict=True)
    ]


class AnonRedisRateThrottle(AnonRateThrottle):
    """``AnonRateThrottle``'s rate (``DEFAULT_THROTTLE_RATES["anon"]``), per ``client_address``, counted in Redis.

    Keys: ``<prefix>throttle:<scope>:<client>:<window>``, ``<window>`` the Unix time divided by
    the rate's period (``count_events``).
    """

    # Set by ``SimpleRateThrottle.__init__`` from the rate (the stubs leave them out).
    num_requests: int
    duration: int
    # What the last ``allow_request`` counted, for ``wait``.
    counted: WindowCount

    def get_ident(self, request: Request) -> str:
        return client_address(request)

    def counter_name(self, client: str) -> str:
        """The counter of ``client`` (a ``client_key``)."""
        return f"throttle:{self.scope}:{client}"

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        if self.get_cache_key(request, view) is None:
            return True  # signed in
        precounted = (getattr(request, "scope", None) or {}).get(PRECOUNTED)
        if precounted is not None:
            self.counted = precounted
            return self.counted.weighed() <= self.num_requests
        name = self.counter_name(client_key(self.get_ident(request)))
        try:
            (self.counted,) = count_events(names=[name], duration=self.duration, now=self.timer())
        except redis.RedisError:
            # Fail open: the data routes answer 503 themselves when Redis is down.
            return True
        return self.counted.weighed() <= self.num_requests

    def wait(self) -> float | None:
        """Whole seconds until one more request would pass (the ``Retry-After`` header)."""
        return self.counted.seconds_until_one_more(limit=self.num_requests)


def _whole_seconds(seconds: float) -> float:
    # Rounded to the millisecond first, so that 12.000000000000004 is 12 s, not 13 s.
    return float(max(1, math.ceil(round(seconds, 3))))
