"""Warnings that repeat at the exchange's rate (a bad frame every 100 ms) without flooding the log."""

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
