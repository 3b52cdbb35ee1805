"""The anonymous rate limit, counted in Redis: one round-trip per request, whatever the rate.

DRF's ``AnonRateThrottle`` keeps each client's request timestamps as a pickled list in the
cache, read and written back whole on every request: two round-trips and, at the default
1,200/min, a list of up to 1,200 floats pickled twice per request (it was the largest
single cost of serving the full chain; see docs/benchmarks.md). Two processes writing the
list back at once also lose each other's requests.

This throttle keeps a sliding-window counter instead: one ``INCR`` per request on the
counter of the current window, and the previous window's count weighted by how much of it
still lies within the last ``duration`` seconds. Counters are atomic, so every daphne
process shares one count per client. Every request counts, refused ones too: a client
that keeps sending while refused stays refused until it slows down.
"""

from __future__ import annotations

import math
from typing import Any

import redis
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle

from optionsite.redis_client import redis_connection, redis_key


class AnonRedisRateThrottle(AnonRateThrottle):
    """``AnonRateThrottle``'s rate (``DEFAULT_THROTTLE_RATES["anon"]``) and client identity, counted in Redis.

    Keys: ``<prefix>throttle:<scope>:<client>:<window>`` (a string counter), where
    ``<window>`` is the Unix time divided by the rate's period; each lives two periods.
    """

    # Set by ``SimpleRateThrottle.__init__`` from the rate (the stubs leave them out).
    num_requests: int
    duration: int
    # What the last ``allow_request`` counted, for ``wait``.
    count: int
    before: int
    elapsed: float

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        if self.get_cache_key(request, view) is None:
            return True  # signed in
        window, elapsed = divmod(self.timer(), self.duration)
        counter = f"throttle:{self.scope}:{self.get_ident(request)}:"
        current, previous = redis_key(counter + str(int(window))), redis_key(counter + str(int(window) - 1))
        pipe = redis_connection().pipeline(transaction=False)
        pipe.incr(current)
        pipe.expire(current, 2 * self.duration)
        pipe.get(previous)
        try:
            count, _, before = pipe.execute()
        except redis.RedisError:
            # Fail open: the data routes answer 503 themselves when Redis is down.
            return True
        self.count = int(count)
        self.before = int(before or 0)
        self.elapsed = elapsed
        return self.before * (1 - elapsed / self.duration) + self.count <= self.num_requests

    def wait(self) -> float | None:
        """Whole seconds until one more request would pass (the ``Retry-After`` header)."""
        duration, elapsed = self.duration, self.elapsed
        if self.num_requests < 1:
            return None
        room = self.num_requests - self.count - 1
        if room >= 0 and self.before > 0:
            # Still in this window, once enough of the previous one has slid out of the last period.
            within = duration * (1 - room / self.before) - elapsed
            if within < duration - elapsed:
                return _whole_seconds(within)
        # In the next window, once enough of this one has slid out.
        later = duration - elapsed + max(0.0, duration * (1 - (self.num_requests - 1) / self.count))
        return _whole_seconds(later)


def _whole_seconds(seconds: float) -> float:
    # Rounded to the millisecond first, so that 12.000000000000004 is 12 s, not 13 s.
    return float(max(1, math.ceil(round(seconds, 3))))
