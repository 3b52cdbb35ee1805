"""Bybit's side of the feed, through pybit: instrument discovery (REST) and the option socket.

pybit fails in ways reference §6 lists; each is closed off here, at the boundary:

* its public WebSocket URL is hard-coded to ``wss://…bybit.com`` (§6.1): ``_connect`` is
  overridden to use ``BYBIT_WS_URL``, and not called from the constructor, so that the
  caller holds the object (and can ``exit()`` it) while a connection attempt hangs;
* it reconnects with no backoff and then gives up for good after ~0.1 s (§6.5): pybit's
  own reconnect is off (``restart_on_error=False``), the feed's watchdog rebuilds;
* a frame that is not JSON, an unknown frame, an option ``success:false`` reply, or any
  exception in a callback kills its socket for good (§6.6): ``_on_message`` is replaced
  by one that never raises, and ``_on_error`` by one that never re-raises;
* it does not chunk subscriptions and its option ``unsubscribe`` removes the wrong topics
  and never forgets them (§6.6): subscribe/unsubscribe frames are sent by the feed itself,
  so pybit's own subscription list stays empty and it never re-subscribes anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from pybit.unified_trading import HTTP, WebSocket

from ingest.symbols import OptionContract, SymbolError, parse_symbol

logger = logging.getLogger(__name__)

# A cursor loop that does not end (a server repeating its cursor) must still end.
MAX_INSTRUMENT_PAGES = 50


class DiscoveryError(Exception):
    """The instrument list could not be read; the message says why."""


def fetch_option_contracts(*, asset: str, rest_url: str, timeout: float = 10) -> list[OptionContract]:
    """Every ``Trading`` option of ``asset``, across all pages of instruments-info."""
    session = HTTP(testnet=False, timeout=timeout, max_retries=2, retry_delay=1)
    session.endpoint = rest_url  # pybit builds its URL from parts; the base is overridable (§6.2)
    contracts: list[OptionContract] = []
    cursor: str | None = None
    seen_cursors: set[str] = set()
    for _ in range(MAX_INSTRUMENT_PAGES):
        try:
            response = session.get_instruments_info(category="option", baseCoin=asset, limit=1000, cursor=cursor)
            page = response["result"]
            items = page["list"]
        except Exception as exc:  # pybit raises its own, requests' and KeyError for odd bodies
            raise DiscoveryError(f"instruments-info for {asset} failed: {exc}") from exc
        for item in items:
            if not isinstance(item, dict) or item.get("status") != "Trading":
                continue
            try:
                contract = parse_symbol(str(item.get("symbol")))
            except SymbolError as exc:
                logger.warning("skipped an instrument: %s", exc, extra={"asset": asset})
                continue
            if contract.base == asset:
                contracts.append(contract)
        cursor = page.get("nextPageCursor") or None
        if cursor is None or cursor in seen_cursors:
            break
        seen_cursors.add(cursor)
    return contracts


class OptionSocket(WebSocket):
    """One connection to the public option stream; frames go to ``on_frame`` as dicts.

    ``on_frame`` runs on pybit's socket thread and must be quick; ``on_bad_frame`` is told
    about text that is not a JSON object. Neither may raise (if one does, it is logged).
    """

    def __init__(
        self,
        *,
        url: str,
        on_frame: Callable[[dict[str, Any]], None],
        on_bad_frame: Callable[[str], None],
        ping_interval: int = 20,
        ping_timeout: int = 10,
    ) -> None:
        self._url = url
        self._on_frame = on_frame
        self._on_bad_frame = on_bad_frame
        self._deferred = True
        super().__init__(
            channel_type="option",
            testnet=False,
            # pybit raises after its last attempt even when that attempt connected, so one
            # attempt needs retries=2; a second, immediate attempt happens only on failure.
            retries=2,
            restart_on_error=False,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )

    def _connect(self, url: str) -> None:
        if self._deferred:  # the constructor's call: the caller connects with open()
            self._deferred = False
            return
        super()._connect(self._url)

    def open(self) -> None:
        """Connect, blocking until connected; raises if the attempt fails."""
        self._connect(self._url)

    def send_json(self, message: dict[str, Any]) -> None:
        self.ws.send(orjson.dumps(message).decode())

    def _on_message(self, message: str | bytes) -> None:
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            self._guarded(self._on_bad_frame, "not JSON")
            return
        if not isinstance(frame, dict):
            self._guarded(self._on_bad_frame, "not a JSON object")
            return
        if frame.get("op") == "pong" or frame.get("ret_msg") == "pong":
            return
        self._guarded(self._on_frame, frame)

    def _on_error(self, error: Exception) -> None:
        if not self.exited:
            logger.warning("option socket closed: %s: %s", type(error).__name__, error)
        self.exit()

    @staticmethod
    def _guarded(callback: Callable[[Any], None], argument: Any) -> None:
        try:
            callback(argument)
        except Exception:
            logger.exception("a frame handler raised; the socket stays up")

    def close(self) -> None:
        """Close without waiting longer than a few seconds for the socket to go."""
        self.exited = True
        self._stop_custom_ping_timer()
        ws = getattr(self, "ws", None)
        if ws is None:
            return
        try:
            ws.close(timeout=1)
        except Exception as exc:  # already broken: nothing left to close
            logger.debug("closing an option socket: %s", exc)
        deadline = time.monotonic() + 3
        while getattr(ws, "sock", None) and time.monotonic() < deadline:
            time.sleep(0.01)
