"""The hand-over between a feed's sockets and its flusher: the newest snapshot per contract."""

from __future__ import annotations

import threading
from typing import Any, NamedTuple


class Snapshot(NamedTuple):
    data: dict[str, Any]  # Bybit's ticker ``data``, wire names, values as text
    ts: int  # the exchange's timestamp (epoch ms)
    received_ts: int  # when the socket thread got it (epoch ms)


class LatestSnapshots:
    """Socket threads ``put``, the flusher ``take``s everything put since its last take.

    Option tickers are full snapshots, so the latest wins: a contract pushed three times
    between two flushes is converted and written once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Snapshot] = {}

    def put(self, symbol: str, snapshot: Snapshot) -> None:
        with self._lock:
            self._pending[symbol] = snapshot

    def take(self) -> dict[str, Snapshot]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def __len__(self) -> int:
        return len(self._pending)
