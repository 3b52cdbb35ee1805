"""Wall-clock time in the units the exchange, Redis and the WebSocket frames use."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Now, in epoch milliseconds (Bybit's ``ts`` unit)."""
    return int(time.time() * 1000)
