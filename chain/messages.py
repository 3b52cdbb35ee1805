"""The frames of the live chain's WebSocket (``/ws/chain/<ASSET>/``, docs/websocket.md), each defined once.

Server → client: ``snapshot``, ``update``, ``instruments``, ``status``, ``analytics``, ``error``; every one carries
the connection's frame counter ``seq``. Client → server: ``view`` (change the expiry/settle filter)
and ``ack`` (the last frame applied). Rows are the ingest's ``ContractRow`` as the ingest sends them
(``ingest.events``), so a row has one shape from the exchange's side to the browser.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, cast
from urllib.parse import parse_qs

import orjson

from ingest.events import FeedState
from ingest.normalize import ContractRow
from ingest.symbols import SettleCoin, SymbolError, format_expiry_code, parse_expiry_code
from optionsite.clock import now_ms

# Close codes (RFC 6455 leaves 4000-4999 to applications); the connection is accepted first so
# that a browser sees the code (a refused handshake is only an HTTP 403 to it).
CLOSE_UNKNOWN_ASSET = 4404
CLOSE_DISABLED_ASSET = 4403

# A client message is a few dozen bytes; anything much larger is a mistake or an attack.
MAX_CLIENT_MESSAGE_CHARS = 4096

# Rows in one frame (a row is 0.85-0.95 kB of JSON): daphne refuses to send a WebSocket message over 1 MiB
# (its --websocket_max_message_size), and a whole chain can be larger than that, so longer lists of rows
# go out in several frames.
MAX_ROWS_PER_FRAME = 500

SnapshotReason = Literal["connect", "view", "resync"]
ErrorCode = Literal["bad_message", "bad_view"]
SETTLES: tuple[SettleCoin, ...] = ("USDT", "USDC")


class ChainView(TypedDict):
    """What the client watches: one expiry or all (``None``), one settle coin or both (``None``)."""

    expiry: str | None
    settle: SettleCoin | None


class ExpiryInfo(TypedDict):
    expiry: str
    delivery_ms: int
    settles: list[SettleCoin]


class FeedInfo(TypedDict):
    state: FeedState | None
    index_price: float | None
    last_message_ts: int | None
    # The exchange ts of the data (ingest.status.FeedStatus.data_ts); the page's indicator ages it.
    data_ts: int | None
    # The feed's lag, exchange ts → visible in Redis, over its last 10 s of writes (ms; ingest.status).
    lag_p50_ms: float | None
    lag_p99_ms: float | None


class SnapshotFrame(TypedDict):
    type: Literal["snapshot"]
    seq: int
    asset: str
    part: int
    parts: int
    reason: SnapshotReason
    view: ChainView
    expiries: list[ExpiryInfo]
    feed: FeedInfo
    rows: list[ContractRow]
    ts: int


class UpdateFrame(TypedDict):
    type: Literal["update"]
    seq: int
    asset: str
    rows: list[ContractRow]
    ts: int


class InstrumentsFrame(TypedDict):
    type: Literal["instruments"]
    seq: int
    asset: str
    listed: list[ContractRow]
    delivered: list[str]
    expiries: list[ExpiryInfo]
    ts: int


class StatusFrame(TypedDict):
    type: Literal["status"]
    seq: int
    asset: str
    state: FeedState
    ts: int


class AnalyticsFrame(TypedDict):
    type: Literal["analytics"]
    seq: int
    asset: str
    # The asset's analytics (analytics.measures.AssetAnalytics), and the view's expiry's with its by-strike series
    # (ExpiryAnalytics; null for a view of every expiry), as the feed stored them (docs/analytics.md).
    analytics: dict[str, Any]
    expiry: dict[str, Any] | None
    ts: int


class ErrorFrame(TypedDict):
    type: Literal["error"]
    seq: int
    code: ErrorCode
    message: str


ServerFrame = SnapshotFrame | UpdateFrame | InstrumentsFrame | StatusFrame | AnalyticsFrame | ErrorFrame


class ViewMessage(TypedDict):
    type: Literal["view"]
    expiry: str | None
    settle: SettleCoin | None


class AckMessage(TypedDict):
    type: Literal["ack"]
    seq: int


ClientMessage = ViewMessage | AckMessage


class BadMessage(ValueError):
    """A client message (or query string) that cannot be used; the text says why, for the error frame."""

    def __init__(self, message: str, *, code: ErrorCode = "bad_message") -> None:
        super().__init__(message)
        self.code: ErrorCode = code


def build_snapshot(
    *,
    seq: int,
    asset: str,
    part: int,
    parts: int,
    reason: SnapshotReason,
    view: ChainView,
    expiries: list[ExpiryInfo],
    feed: FeedInfo,
    rows: list[ContractRow],
) -> SnapshotFrame:
    """Part ``part`` of ``parts`` (from 1): the first replaces what the client holds, the others add to it."""
    return {
        "type": "snapshot",
        "seq": seq,
        "asset": asset,
        "part": part,
        "parts": parts,
        "reason": reason,
        "view": view,
        "expiries": expiries,
        "feed": feed,
        "rows": rows,
        "ts": now_ms(),
    }


def build_update(*, seq: int, asset: str, rows: list[ContractRow], ts: int) -> UpdateFrame:
    """``ts`` is the ingest's: when it flushed these rows."""
    return {"type": "update", "seq": seq, "asset": asset, "rows": rows, "ts": ts}


def build_instruments(
    *, seq: int, asset: str, listed: list[ContractRow], delivered: list[str], expiries: list[ExpiryInfo], ts: int
) -> InstrumentsFrame:
    return {
        "type": "instruments",
        "seq": seq,
        "asset": asset,
        "listed": listed,
        "delivered": delivered,
        "expiries": expiries,
        "ts": ts,
    }


def build_status(*, seq: int, asset: str, state: FeedState, ts: int) -> StatusFrame:
    return {"type": "status", "seq": seq, "asset": asset, "state": state, "ts": ts}


def build_analytics(
    *, seq: int, asset: str, analytics_json: bytes, expiry_json: bytes | None, ts: int
) -> AnalyticsFrame:
    """``ts`` is the feed's: when it computed them. The JSON goes into the frame as it is."""
    return {
        "type": "analytics",
        "seq": seq,
        "asset": asset,
        "analytics": cast(dict[str, Any], orjson.Fragment(analytics_json)),
        "expiry": None if expiry_json is None else cast(dict[str, Any], orjson.Fragment(expiry_json)),
        "ts": ts,
    }


def build_error(*, seq: int, code: ErrorCode, message: str) -> ErrorFrame:
    return {"type": "error", "seq": seq, "code": code, "message": message}


def row_chunks(rows: list[ContractRow]) -> list[list[ContractRow]]:
    """``rows`` in slices of at most ``MAX_ROWS_PER_FRAME``; one empty slice when there are none."""
    return [rows[start : start + MAX_ROWS_PER_FRAME] for start in range(0, len(rows), MAX_ROWS_PER_FRAME)] or [[]]


def encode_frame(frame: ServerFrame) -> str:
    return orjson.dumps(frame).decode()


def written_rows(rows_json: bytes) -> list[ContractRow]:
    """Rows already written as a JSON array (shared by connections), to build a frame with: ``encode_frame``
    copies them as they are."""
    return cast(list[ContractRow], orjson.Fragment(rows_json))


def encode_update(*, seq: int, asset: str, rows_json: bytes, ts: int) -> str:
    """``encode_frame(build_update(...))`` for rows already written as a JSON array."""
    return encode_frame(build_update(seq=seq, asset=asset, rows=written_rows(rows_json), ts=ts))


def parse_view(*, expiry: Any, settle: Any) -> ChainView:
    """Validate a requested view; expiry codes are normalised to Bybit's (``02SEP25`` → ``2SEP25``)."""
    if expiry in (None, ""):
        expiry_code = None
    elif isinstance(expiry, str):
        try:
            expiry_code = format_expiry_code(parse_expiry_code(expiry.strip()))
        except SymbolError as exc:
            raise BadMessage(str(exc), code="bad_view") from None
    else:
        raise BadMessage("expiry must be an expiry code like 26DEC25, or null", code="bad_view")
    settle_coin: SettleCoin | None = None
    if settle in (None, ""):
        pass
    elif isinstance(settle, str) and settle.strip().upper() in SETTLES:
        settle_coin = "USDT" if settle.strip().upper() == "USDT" else "USDC"
    else:
        raise BadMessage("settle must be USDT, USDC or null", code="bad_view")
    return {"expiry": expiry_code, "settle": settle_coin}


def view_from_query(query_string: bytes) -> ChainView:
    """The view asked for in the URL: ``?expiry=26DEC25&settle=USDT`` (both optional)."""
    try:
        params = parse_qs(query_string.decode("latin-1"), max_num_fields=10)
    except ValueError as exc:
        raise BadMessage(f"unreadable query string: {exc}", code="bad_view") from None
    unknown = sorted(set(params) - {"expiry", "settle"})
    if unknown:
        raise BadMessage(f"unknown query parameter(s): {', '.join(unknown)}", code="bad_view")
    return parse_view(expiry=params.get("expiry", [None])[-1], settle=params.get("settle", [None])[-1])


def parse_client_message(text: str) -> ClientMessage:
    """Decode a text frame from the client; ``BadMessage`` says what is wrong with it."""
    if len(text) > MAX_CLIENT_MESSAGE_CHARS:
        raise BadMessage(f"message longer than {MAX_CLIENT_MESSAGE_CHARS} characters")
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadMessage("message is not JSON") from None
    if not isinstance(message, dict):
        raise BadMessage("message is not a JSON object")
    kind = message.get("type")
    if kind == "view":
        view = parse_view(expiry=message.get("expiry"), settle=message.get("settle"))
        return {"type": "view", "expiry": view["expiry"], "settle": view["settle"]}
    if kind == "ack":
        seq = message.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise BadMessage("ack needs seq, the non-negative seq of the last frame applied")
        return {"type": "ack", "seq": seq}
    raise BadMessage('type must be "view" or "ack"')
