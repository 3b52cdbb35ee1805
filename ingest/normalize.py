"""Bybit ticker fields → the contract row the rest of the project uses. Converted once, here.

Conventions (docs/redis.md, docs/api.md):

* numbers are floats; implied volatilities and ``change_24h`` are fractions as Bybit sends
  them (``0.4896`` is 48.96 %);
* a side of the book (bid: price, size, IV; ask: the same) changes whole. Bybit's option
  tickers are full snapshots (docs/redis.md), so a side's three fields are one quote: a
  snapshot that has all three, as numbers, sets the side; one that has only part of it, or a
  value that is not a number, keeps the whole previous side and says so (``kept``). Taken
  field by field, such a snapshot showed sizes without a price and crossed books (#11);
* a zero bid or ask price is Bybit's "no quote" (``"0"``, ``"0"``, ``"0"``): price, size and IV
  of that side become ``None``, and so does a zero ``last_price`` (no trade yet) or
  ``predicted_delivery_price`` (only set in the 30 minutes before delivery);
* ``crossed`` is true when both sides are quoted and the bid is above the ask;
* any other field missing from a snapshot keeps its previous value (Bybit leaves some out,
  e.g. ``predictedDeliveryPrice``); one that is present but not a finite number (``null``
  included) keeps its previous value too, and is in ``kept``: garbage never overwrites a
  good value;
* a snapshot of which nothing can be applied is rejected (``BadTicker``), ``ts`` included;
* the contract's own measures (``MEASURE_FIELDS``: moneyness, chance of finishing in the money,
  spreads) are worked out again on every row a snapshot changes, from that row alone
  (``analytics.contracts``); a listed contract's row has them ``None`` until its first ticker.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple, TypedDict

from analytics.contracts import set_contract_measures
from ingest.symbols import OptionContract, format_strike

BID_FIELDS = ("bid_price", "bid_size", "bid_iv")
ASK_FIELDS = ("ask_price", "ask_size", "ask_iv")
# The quote fields that are not part of a side; each is applied on its own.
_SINGLE_FIELDS = (
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
# The numbers a ticker carries, in row order.
QUOTE_FIELDS = (*BID_FIELDS, *ASK_FIELDS, *_SINGLE_FIELDS)
# Worked out from the row (analytics.contracts), after the fields Bybit sends: a CSV's columns keep their places.
MEASURE_FIELDS = ("moneyness", "log_moneyness", "itm_probability", "spread", "iv_spread")
# What a ticker can change in a row, in row order; the rest is the contract's identity.
TICKER_FIELDS = (*BID_FIELDS, *ASK_FIELDS, "crossed", *_SINGLE_FIELDS, "ts", "received_ts", *MEASURE_FIELDS)

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
# Of the fields not in a side (a side's price and size are never negative, its IV may be).
_NON_NEGATIVE = frozenset({"last_price", "mark_price", "index_price", "underlying_price"})
_ZERO_MEANS_NONE = frozenset({"last_price", "predicted_delivery_price"})
_SIDES = (("bid", BID_FIELDS), ("ask", ASK_FIELDS))
_ABSENT = object()


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
    crossed: bool
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
    moneyness: float | None
    log_moneyness: float | None
    itm_probability: float | None
    spread: float | None
    iv_spread: float | None


class BadTicker(ValueError):
    """A ticker snapshot that must not be applied; the message says why."""


class AppliedSnapshot(NamedTuple):
    row: ContractRow
    # What the snapshot had but could not set, kept from the row before: "bid", "ask" or a
    # field's name. The feed counts such a snapshot as a rejected frame.
    kept: tuple[str, ...]


def static_row(contract: OptionContract) -> ContractRow:
    """The row of a listed contract before any ticker arrived: every quote field and measure ``None``."""
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
    row.update(dict.fromkeys(TICKER_FIELDS))
    row["crossed"] = False
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
    """``apply_snapshot``'s row, for callers that do not count what was kept (fixtures, scripts)."""
    return apply_snapshot(row, data, ts=ts, received_ts=received_ts, names=names, previous_data=previous_data).row


def apply_snapshot(
    row: ContractRow,
    data: Mapping[str, Any],
    *,
    ts: int,
    received_ts: int,
    names: Mapping[str, str] = WS_NAMES,
    previous_data: Mapping[str, Any] | None = None,
) -> AppliedSnapshot:
    """A copy of ``row`` with the snapshot ``data`` applied, and what of it was kept (module docstring).

    ``BadTicker`` if nothing of it can be applied. ``previous_data`` is the snapshot ``row`` was
    last updated from, if the caller kept it and nothing of it was kept: a field whose text is
    the same as there already holds its value and is not parsed again (most fields of a 100 ms
    ticker repeat; parsing was a fifth of the feed's flush).
    """
    if not isinstance(data, Mapping):
        raise BadTicker("ticker data is not an object")
    if data.get("symbol", row["symbol"]) != row["symbol"]:
        raise BadTicker(f"ticker for {data.get('symbol')!r} arrived as {row['symbol']}")
    updated: dict[str, Any] = dict(row)
    specs = _field_specs(names)
    kept: list[str] = []
    applied = False
    repeats = previous_data if previous_data is not None else {}
    for side, price_field, size_field, iv_field, price_wire, size_wire, iv_wire in specs.sides:
        price_raw = data.get(price_wire, _ABSENT)
        size_raw = data.get(size_wire, _ABSENT)
        iv_raw = data.get(iv_wire, _ABSENT)
        if price_raw is _ABSENT and size_raw is _ABSENT and iv_raw is _ABSENT:
            continue  # not sent at all: nothing to mix up
        if (
            price_raw == repeats.get(price_wire, _ABSENT)
            and size_raw == repeats.get(size_wire, _ABSENT)
            and iv_raw == repeats.get(iv_wire, _ABSENT)
        ):
            applied = True  # the row holds this side already
            continue
        price = _number(price_raw, non_negative=True)
        size = _number(size_raw, non_negative=True)
        iv = _number(iv_raw, non_negative=False)
        if price is None or size is None or iv is None:
            kept.append(side)
            continue
        applied = True
        if price == 0:  # Bybit's "no quote"
            updated[price_field] = updated[size_field] = updated[iv_field] = None
        else:
            updated[price_field], updated[size_field], updated[iv_field] = price, size, iv
    for field, wire, non_negative, zero_means_none in specs.single:
        raw = data.get(wire, _ABSENT)
        if raw is _ABSENT:
            continue
        if raw == repeats.get(wire, _ABSENT):
            applied = True
            continue
        value = _number(raw, non_negative=non_negative)
        if value is None:
            kept.append(field)
            continue
        applied = True
        updated[field] = None if zero_means_none and value == 0 else value
    if not applied:
        raise BadTicker(f"nothing to apply ({', '.join(kept)} not usable)" if kept else "no ticker field")
    bid, ask = updated["bid_price"], updated["ask_price"]
    updated["crossed"] = bid is not None and ask is not None and bid > ask
    updated["ts"] = ts
    updated["received_ts"] = received_ts
    set_contract_measures(updated)
    return AppliedSnapshot(updated, tuple(kept))  # type: ignore[arg-type]


def _number(raw: Any, *, non_negative: bool) -> float | None:
    """``raw`` as a finite number (non-negative if asked), else ``None``."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if value - value != 0.0 or (non_negative and value < 0):  # NaN and ±inf give NaN
        return None
    return value


# (field, wire name, non-negative, zero means None)
_Spec = tuple[str, str, bool, bool]
# (side, price, size and IV fields, their wire names)
_SideSpec = tuple[str, str, str, str, str, str, str]


class _FieldSpecs(NamedTuple):
    """The quote fields as ``apply_snapshot`` reads them: by side, then one by one."""

    sides: tuple[_SideSpec, ...]
    single: tuple[_Spec, ...]


@functools.cache
def _specs_for(names: tuple[tuple[str, str], ...]) -> _FieldSpecs:
    wire = dict(names)
    return _FieldSpecs(
        sides=tuple((side, price, size, iv, wire[price], wire[size], wire[iv]) for side, (price, size, iv) in _SIDES),
        single=tuple(
            (field, wire[field], field in _NON_NEGATIVE, field in _ZERO_MEANS_NONE) for field in _SINGLE_FIELDS
        ),
    )


_WS_SPECS = _specs_for(tuple(WS_NAMES.items()))


def _field_specs(names: Mapping[str, str]) -> _FieldSpecs:
    return _WS_SPECS if names is WS_NAMES else _specs_for(tuple(names.items()))


def hash_text(value: object) -> str:
    """A row value as the per-contract Redis hash stores it: ``""`` for "no value", ``1``/``0`` for a flag."""
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def contract_hash_arguments(fields: Iterable[tuple[str, Any]]) -> list[str]:
    """``field, value, field, value…`` as the per-contract Redis hash stores them: text, ``""`` for "no value"."""
    arguments: list[str] = []
    for name, value in fields:
        arguments += (name, hash_text(value))
    return arguments
