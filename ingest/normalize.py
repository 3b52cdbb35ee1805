"""Bybit ticker fields → the contract row the rest of the project uses. Converted once, here.

Conventions (docs/redis.md, docs/api.md):

* numbers are floats; implied volatilities and ``change_24h`` are fractions as Bybit sends
  them (``0.4896`` is 48.96 %);
* a zero bid or ask is Bybit's "no quote": price, size and IV of that side become ``None``,
  and so does a zero ``last_price`` (no trade yet) or ``predicted_delivery_price`` (only
  set in the 30 minutes before delivery);
* a field missing from a snapshot keeps its previous value; a field that is present but
  not a finite number rejects the whole snapshot, so garbage never overwrites a good value.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple, TypedDict

from ingest.symbols import OptionContract, format_strike

QUOTE_FIELDS = (
    "bid_price",
    "bid_size",
    "bid_iv",
    "ask_price",
    "ask_size",
    "ask_iv",
    "last_price",
    "mark_price",
    "mark_iv",
    "index_price",
    "underlying_price",
    "delta",
    "gamma",
    "theta",
    "vega",
    "open_interest",
    "volume_24h",
    "turnover_24h",
    "total_volume",
    "total_turnover",
    "high_price_24h",
    "low_price_24h",
    "change_24h",
    "predicted_delivery_price",
)
# What a ticker can change in a row; the rest is the contract's identity.
TICKER_FIELDS = (*QUOTE_FIELDS, "ts", "received_ts")

# Bybit's names on the WebSocket (tickers.{symbol}) and on REST (/v5/market/tickers).
_COMMON_NAMES = {
    "last_price": "lastPrice",
    "mark_price": "markPrice",
    "index_price": "indexPrice",
    "underlying_price": "underlyingPrice",
    "delta": "delta",
    "gamma": "gamma",
    "theta": "theta",
    "vega": "vega",
    "open_interest": "openInterest",
    "volume_24h": "volume24h",
    "turnover_24h": "turnover24h",
    "total_volume": "totalVolume",
    "total_turnover": "totalTurnover",
    "high_price_24h": "highPrice24h",
    "low_price_24h": "lowPrice24h",
    "change_24h": "change24h",
    "predicted_delivery_price": "predictedDeliveryPrice",
}
WS_NAMES: dict[str, str] = {
    **_COMMON_NAMES,
    "bid_price": "bidPrice",
    "bid_size": "bidSize",
    "bid_iv": "bidIv",
    "ask_price": "askPrice",
    "ask_size": "askSize",
    "ask_iv": "askIv",
    "mark_iv": "markPriceIv",
}
REST_NAMES: dict[str, str] = {
    **_COMMON_NAMES,
    "bid_price": "bid1Price",
    "bid_size": "bid1Size",
    "bid_iv": "bid1Iv",
    "ask_price": "ask1Price",
    "ask_size": "ask1Size",
    "ask_iv": "ask1Iv",
    "mark_iv": "markIv",
}
_NON_NEGATIVE = frozenset(
    {"bid_price", "bid_size", "ask_price", "ask_size", "last_price", "mark_price", "index_price", "underlying_price"}
)
_ZERO_MEANS_NONE = {"bid_price": ("bid_size", "bid_iv"), "ask_price": ("ask_size", "ask_iv"), "last_price": ()}
_ZERO_GROUP_FIELDS = frozenset(
    {*_ZERO_MEANS_NONE, *(companion for group in _ZERO_MEANS_NONE.values() for companion in group)}
)
# Fields that may be skipped when their text repeats: none of them is read by another's rule.
_REPEATABLE_FIELDS = tuple(field for field in QUOTE_FIELDS if field not in _ZERO_GROUP_FIELDS)


class ContractRow(TypedDict):
    symbol: str
    asset: str
    expiry: str
    expiry_at: str
    delivery_ms: int
    strike: float
    strike_text: str
    type: Literal["call", "put"]
    settle: Literal["USDT", "USDC"]
    bid_price: float | None
    bid_size: float | None
    bid_iv: float | None
    ask_price: float | None
    ask_size: float | None
    ask_iv: float | None
    last_price: float | None
    mark_price: float | None
    mark_iv: float | None
    index_price: float | None
    underlying_price: float | None
    delta: float | None
    gamma: float | None
    theta: float | None
    vega: float | None
    open_interest: float | None
    volume_24h: float | None
    turnover_24h: float | None
    total_volume: float | None
    total_turnover: float | None
    high_price_24h: float | None
    low_price_24h: float | None
    change_24h: float | None
    predicted_delivery_price: float | None
    ts: int | None
    received_ts: int | None


class BadTicker(ValueError):
    """A ticker snapshot that must not be applied; the message says why."""


def static_row(contract: OptionContract) -> ContractRow:
    """The row of a listed contract before any ticker arrived: every quote field ``None``."""
    row: dict[str, Any] = {
        "symbol": contract.symbol,
        "asset": contract.base,
        "expiry": contract.expiry_code,
        "expiry_at": contract.expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "delivery_ms": int(contract.expiry.timestamp() * 1000),
        "strike": float(contract.strike),
        "strike_text": format_strike(contract.strike),
        "type": contract.option_type,
        "settle": contract.settle,
    }
    row.update(dict.fromkeys(QUOTE_FIELDS))
    row["ts"] = None
    row["received_ts"] = None
    return row  # type: ignore[return-value]


def apply_ticker(
    row: ContractRow,
    data: Mapping[str, Any],
    *,
    ts: int,
    received_ts: int,
    names: Mapping[str, str] = WS_NAMES,
    previous_data: Mapping[str, Any] | None = None,
) -> ContractRow:
    """A copy of ``row`` with the snapshot ``data`` applied; ``BadTicker`` if it is garbage.

    ``previous_data`` is the snapshot ``row`` was last updated from, if the caller kept it: a
    field whose text is the same as there already holds its value and is not parsed again
    (most fields of a 100 ms ticker repeat; parsing was a fifth of the feed's flush).
    """
    if not isinstance(data, Mapping):
        raise BadTicker("ticker data is not an object")
    if data.get("symbol", row["symbol"]) != row["symbol"]:
        raise BadTicker(f"ticker for {data.get('symbol')!r} arrived as {row['symbol']}")
    updated: dict[str, Any] = dict(row)
    specs = _field_specs(names)
    if previous_data is None:
        for field, wire, non_negative in specs.every:
            raw = data.get(wire)
            if raw is not None:
                updated[field] = _number(wire, raw, non_negative=non_negative)
    else:
        for field, wire, non_negative in specs.repeatable:
            raw = data.get(wire)
            if raw is not None and raw != previous_data.get(wire):
                updated[field] = _number(wire, raw, non_negative=non_negative)
        # These depend on each other ("0" bid = no bid, size or IV): always applied together.
        for field, wire, non_negative in specs.zero_group:
            raw = data.get(wire)
            if raw is not None:
                updated[field] = _number(wire, raw, non_negative=non_negative)
    for field, companions in _ZERO_MEANS_NONE.items():
        if updated[field] == 0:
            updated[field] = None
            for companion in companions:
                updated[companion] = None
    if updated["predicted_delivery_price"] == 0:
        updated["predicted_delivery_price"] = None
    updated["ts"] = ts
    updated["received_ts"] = received_ts
    return updated  # type: ignore[return-value]


def _number(wire: str, raw: Any, *, non_negative: bool) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadTicker(f"{wire}={raw!r} is not a number") from None
    if value - value != 0.0 or (non_negative and value < 0):  # NaN and ±inf give NaN
        raise BadTicker(f"{wire}={raw!r} is out of range")
    return value


class _FieldSpecs(NamedTuple):
    """(field, wire name, non-negative) of the quote fields, grouped as ``apply_ticker`` reads them."""

    every: tuple[tuple[str, str, bool], ...]
    repeatable: tuple[tuple[str, str, bool], ...]
    zero_group: tuple[tuple[str, str, bool], ...]


@functools.cache
def _specs_for(names: tuple[tuple[str, str], ...]) -> _FieldSpecs:
    wire = dict(names)

    def specs(fields: Iterable[str]) -> tuple[tuple[str, str, bool], ...]:
        return tuple((field, wire[field], field in _NON_NEGATIVE) for field in fields)

    return _FieldSpecs(
        every=specs(QUOTE_FIELDS),
        repeatable=specs(_REPEATABLE_FIELDS),
        zero_group=specs(field for field in QUOTE_FIELDS if field in _ZERO_GROUP_FIELDS),
    )


_WS_SPECS = _specs_for(tuple(WS_NAMES.items()))


def _field_specs(names: Mapping[str, str]) -> _FieldSpecs:
    return _WS_SPECS if names is WS_NAMES else _specs_for(tuple(names.items()))


def contract_hash_arguments(fields: Iterable[tuple[str, Any]]) -> list[str]:
    """``field, value, field, value…`` as the per-contract Redis hash stores them: text, ``""`` for "no value"."""
    arguments: list[str] = []
    for name, value in fields:
        arguments += (name, "" if value is None else str(value))
    return arguments
