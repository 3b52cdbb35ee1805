"""Every byte the simulator puts on the wire, built in one place.

Shapes follow the reference (``bybit-v5-options.md``): option WebSocket answers use the
``COMMAND_RESP`` envelope (no ``op``, no ``ret_msg``, no ``req_id``), the option pong is
``{"args":["<ms>"],"op":"pong"}``, ticker pushes are ``id, topic, ts, data, type`` in that order.

Ticker frames are written to the socket as ready-made RFC 6455 text frames: the id carries a
sequence number of fixed width (11 digits) and ``ts`` is 13 digits, so a frame's length, and with it
the frame header, is known when the data is encoded; a push only glues the parts together.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

# Bybit's ids carry a large sequence number ("tickers.X-2480334983-<ts>"); starting at 10**10 keeps it 11 digits
# for 9e10 messages, so every frame of a contract has the same length.
SEQ_START = 10_000_000_000
SEQ_END = 99_999_999_999
_TS_DIGITS = 13


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def text_frame_header(length: int) -> bytes:
    """Header of an unmasked, final, uncompressed text frame (server → client frames are never masked)."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")


def text_frame(payload: bytes) -> bytes:
    return text_frame_header(len(payload)) + payload


class TickerFrameParts(NamedTuple):
    """A ticker push minus its sequence number and timestamp.

    frame = prefix + seq + b"-" + ts + middle + ts + tail, where prefix starts with the frame header.
    """

    prefix: bytes
    middle: bytes
    tail: bytes


def ticker_frame_parts(*, symbol: str, data: bytes) -> TickerFrameParts:
    """Pre-encode one ``tickers.{symbol}`` snapshot whose ``data`` object is already JSON."""
    topic = f"tickers.{symbol}".encode()
    head = b'{"id":"' + topic + b"-"
    middle = b'","topic":"' + topic + b'","ts":'
    tail = b',"data":' + data + b',"type":"snapshot"}'
    length = len(head) + 11 + 1 + _TS_DIGITS + len(middle) + _TS_DIGITS + len(tail)
    return TickerFrameParts(text_frame_header(length) + head, middle, tail)


def ticker_frame(parts: TickerFrameParts, *, seq: int, ts_ms: int) -> bytes:
    """One complete frame, for the slow paths; the push loop inlines the same join."""
    ts = str(ts_ms).encode()
    return b"".join((parts.prefix, str(seq).encode(), b"-", ts, parts.middle, ts, parts.tail))


def ticker_message(*, symbol: str, data: Mapping[str, Any], seq: int, ts_ms: int) -> bytes:
    """A ticker push as JSON (no frame header), for frames built field by field (malformed ones)."""
    return orjson.dumps(
        {
            "id": f"tickers.{symbol}-{seq}-{ts_ms}",
            "topic": f"tickers.{symbol}",
            "ts": ts_ms,
            "data": data,
            "type": "snapshot",
        }
    )


def command_resp(
    *, conn_id: str, success_topics: Sequence[str], fail_topics: Sequence[str], ret_msg: str | None = None
) -> bytes:
    """The option socket's answer to subscribe and unsubscribe (reference §1.2)."""
    message: dict[str, Any] = {"success": not fail_topics}
    if ret_msg is not None:
        message["ret_msg"] = ret_msg
    message["conn_id"] = conn_id
    message["data"] = {"failTopics": list(fail_topics), "successTopics": list(success_topics)}
    message["type"] = "COMMAND_RESP"
    return orjson.dumps(message)


def op_error(*, conn_id: str, op: str, req_id: Any, ret_msg: str) -> bytes:
    """A refusal in the shape the other public sockets use (``args size >10`` on spot, reference §1.4).

    What the option socket answers to a request it cannot parse is UNCONFIRMED; this shape is the
    one Bybit is known to send for bad requests elsewhere.
    """
    message: dict[str, Any] = {"success": False, "ret_msg": ret_msg, "conn_id": conn_id}
    if req_id is not None:
        message["req_id"] = req_id
    message["op"] = op
    return orjson.dumps(message)


def pong(*, ts_ms: int, conn_id: str | None, req_id: Any = None) -> bytes:
    """The option pong: ``{"args":["<ms>"],"op":"pong"}``, optionally with conn_id and the echoed req_id."""
    message: dict[str, Any] = {"args": [str(ts_ms)]}
    if conn_id is not None:
        message["conn_id"] = conn_id
    if req_id is not None:
        message["req_id"] = req_id
    message["op"] = "pong"
    return orjson.dumps(message)


def trade_message(*, base: str, seq: int, ts_ms: int, trades: Sequence[Mapping[str, Any]]) -> bytes:
    """``publicTrade.{BASE}``: one message carries trades of every contract of the base coin (reference §3.2)."""
    return orjson.dumps(
        {
            "topic": f"publicTrade.{base}",
            "ts": ts_ms,
            "type": "snapshot",
            "id": f"publicTrade.{base}-{seq}-{ts_ms}",
            "data": list(trades),
        }
    )


def rest_ok(result: Any) -> bytes:
    return orjson.dumps({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now_ms()})


def rest_error(*, code: int, message: str) -> bytes:
    return orjson.dumps({"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": now_ms()})
