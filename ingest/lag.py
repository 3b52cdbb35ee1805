"""How far behind the exchange a feed's writes are: exchange ``ts`` → visible in Redis."""

from __future__ import annotations

import itertools
from array import array
from collections import deque
from collections.abc import Iterable

# Percentiles are taken over at most this many samples (every n-th one past it): a full
# window of 2,000 contracts written 4 times a second is 80,000 samples.
MAX_SAMPLES = 20_000


class LagWindow:
    """The lags of the last ``seconds`` of writes; p50/p99 recomputed at most every ``every`` s."""

    def __init__(self, seconds: float = 10.0, *, every: float = 1.0) -> None:
        self.seconds = seconds
        self.every = every
        self._batches: deque[tuple[float, array[int]]] = deque()
        self._computed_at = float("-inf")
        self._percentiles: tuple[float | None, float | None] = (None, None)

    def add(self, lags: Iterable[int], *, now: float) -> None:
        """Record one write's lags (ms), ``now`` on the monotonic clock."""
        batch = array("q", lags)
        if batch:
            self._batches.append((now, batch))
        self._expire(now)

    def percentiles(self, *, now: float) -> tuple[float | None, float | None]:
        """(p50, p99) in ms over the window; ``None`` when nothing was written in it."""
        if now - self._computed_at >= self.every:
            self._expire(now)
            self._computed_at = now
            self._percentiles = _p50_p99(itertools.chain.from_iterable(batch for _, batch in self._batches))
        return self._percentiles

    def _expire(self, now: float) -> None:
        while self._batches and now - self._batches[0][0] > self.seconds:
            self._batches.popleft()


def _p50_p99(lags: Iterable[int]) -> tuple[float | None, float | None]:
    samples = list(lags)
    if not samples:
        return None, None
    if len(samples) > MAX_SAMPLES:
        samples = samples[:: -(-len(samples) // MAX_SAMPLES)]
    samples.sort()
    last = len(samples) - 1
    return float(samples[int(0.5 * last)]), float(samples[int(0.99 * last)])
