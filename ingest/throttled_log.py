"""Warnings that repeat at the exchange's rate (a bad frame every 100 ms), or at every try during an outage,
without flooding the log."""

from __future__ import annotations

import logging
import time
from typing import Any


class RateLimitedLog:
    """At most one line per ``interval`` seconds per key; the lines in between are counted."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: Any, asset: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        suppressed = self._suppressed.pop(key, 0)
        self._last[key] = now
        suffix = f" ({suppressed} more since the last such line)" if suppressed else ""
        self.logger.warning(message + suffix, *args, extra={"asset": asset})


class FailureLog:
    """One line when an operation starts failing, one when it works again, with how many tries failed between.

    A Redis outage of 25 s used to log a traceback per flush: 261 lines. A failure that is not the outage's
    (``expected`` says which are) keeps its traceback on the first line, since it is probably a bug.
    """

    def __init__(
        self, logger: logging.Logger, what: str, *, asset: str, expected: tuple[type[BaseException], ...]
    ) -> None:
        self.logger = logger
        self.what = what
        self.asset = asset
        self.expected = expected
        self.failures = 0
        self._since = 0.0

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            self._since = time.monotonic()
            self.logger.warning(
                "%s failed: %s: %s; retrying (logged again when it works)",
                self.what,
                type(error).__name__,
                error,
                exc_info=None if isinstance(error, self.expected) else error,
                extra={"asset": self.asset},
            )

    def succeeded(self) -> None:
        if self.failures:
            self.logger.warning(
                "%s works again, after %d failed tries in %.1f s",
                self.what,
                self.failures,
                time.monotonic() - self._since,
                extra={"asset": self.asset},
            )
            self.failures = 0
