"""Pure logic over chain rows: filters, ordering, the forward and the at-the-money strike."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from chain.rows import Row
from ingest.normalize import MEASURE_FIELDS, QUOTE_FIELDS
from ingest.symbols import OptionType, SettleCoin

SECONDS_PER_YEAR = 365 * 24 * 3600

# Public name in ``ordering`` → the row field it sorts by.
ORDERING_FIELDS: dict[str, str] = {
    "symbol": "symbol",
    "expiry": "delivery_ms",
    "strike": "strike",
    "type": "type",
    "settle": "settle",
    # Every quote field and measure sorts by itself, but the delivery price (null but for half an hour a day).
    **{name: name for name in (*QUOTE_FIELDS, "ts", *MEASURE_FIELDS) if name != "predicted_delivery_price"},
}
DEFAULT_ORDERING: tuple[tuple[str, bool], ...] = (
    ("expiry", False),
    ("strike", False),
    ("type", False),
    ("settle", False),
)


@dataclass(frozen=True)
class RowFilter:
    """What ``/api/options/`` was asked for; every field optional."""

    expiry: str | None = None
    type: OptionType | None = None
    settle: SettleCoin | None = None
    strike: float | None = None
    strike_min: float | None = None
    strike_max: float | None = None
    atm: int | None = None
    ordering: tuple[tuple[str, bool], ...] = DEFAULT_ORDERING


def parse_ordering(text: str) -> tuple[tuple[str, bool], ...]:
    """``"-open_interest,strike"`` → ``(("open_interest", True), ("strike", False))``; ``ValueError`` if bad."""
    keys: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for part in text.split(","):
        name = part.strip()
        descending = name.startswith("-")
        name = name.removeprefix("-").removeprefix("+")
        if not name:
            raise ValueError("empty field name")
        if name not in ORDERING_FIELDS:
            raise ValueError(f"unknown field {name!r}; use one of {', '.join(sorted(ORDERING_FIELDS))}")
        if name in seen:
            raise ValueError(f"field {name!r} given twice")
        seen.add(name)
        keys.append((name, descending))
    return tuple(keys)


def filter_rows(rows: Iterable[Row], *, row_filter: RowFilter) -> list[Row]:
    selected = [
        row
        for row in rows
        if (row_filter.expiry is None or row["expiry"] == row_filter.expiry)
        and (row_filter.settle is None or row["settle"] == row_filter.settle)
    ]
    if row_filter.atm is not None:
        # The window is taken before the type filter, so calls and puts get the same strikes.
        selected = atm_window(selected, width=row_filter.atm)
    return [
        row
        for row in selected
        if (row_filter.type is None or row["type"] == row_filter.type)
        and (row_filter.strike is None or row["strike"] == row_filter.strike)
        and (row_filter.strike_min is None or row["strike"] >= row_filter.strike_min)
        and (row_filter.strike_max is None or row["strike"] <= row_filter.strike_max)
    ]


# Fields every row has a value for: listed by the ingest before any quote.
_ALWAYS_SET = frozenset({"symbol", "delivery_ms", "strike", "type", "settle"})


def order_rows(rows: list[Row], *, ordering: Sequence[tuple[str, bool]]) -> list[Row]:
    """Sort by several fields, each ascending or descending; rows without a value go last."""
    fields = [ORDERING_FIELDS[name] for name, _ in ordering]
    directions = {descending for _, descending in ordering}
    if len(directions) == 1 and _ALWAYS_SET.issuperset(fields):
        # The default order takes this path: one sort instead of one per field.
        return sorted(rows, key=itemgetter(*fields), reverse=directions.pop())
    ordered = list(rows)
    # Python's sort is stable, so sorting by the last key first yields the combined order.
    for name, descending in reversed(ordering):
        field = ORDERING_FIELDS[name]
        present = [row for row in ordered if row[field] is not None]
        missing = [row for row in ordered if row[field] is None]
        present.sort(key=itemgetter(field), reverse=descending)
        ordered = present + missing
    return ordered


def forward_price(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """The expiry's forward: the latest ``underlying_price`` quoted, else the latest index price."""
    best: tuple[int, float] | None = None
    fallback: tuple[int, float] | None = None
    for row in rows:
        ts = row["ts"] or 0
        if row["underlying_price"] is not None and (best is None or ts > best[0]):
            best = (ts, row["underlying_price"])
        if row["index_price"] is not None and (fallback is None or ts > fallback[0]):
            fallback = (ts, row["index_price"])
    if best is not None:
        return best[1]
    return fallback[1] if fallback is not None else None


def atm_strike(strikes: Iterable[float], forward: float | None) -> float | None:
    """The strike nearest the forward (the lower one on a tie); ``None`` without a forward."""
    if forward is None:
        return None
    return min(strikes, key=lambda strike: (abs(strike - forward), strike), default=None)


def atm_window(rows: Iterable[Row], *, width: int) -> list[Row]:
    """Rows within ``width`` strikes either side of the ATM strike of their expiry and settle coin.

    USDT and USDC contracts of one expiry are listed on different strike grids, so each
    (expiry, settle) group gets its own ATM strike. A group with no forward yet (no
    quotes at all) has no ATM strike and contributes nothing.
    """
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row["expiry"], row["settle"])].append(row)
    kept: list[Row] = []
    for group in groups.values():
        strikes = sorted({row["strike"] for row in group})
        atm = atm_strike(strikes, forward_price(group))
        if atm is None:
            continue
        centre = strikes.index(atm)
        window = set(strikes[max(0, centre - width) : centre + width + 1])
        kept.extend(row for row in group if row["strike"] in window)
    return kept


def seconds_to_expiry(delivery_ms: int, *, now_ms: int) -> float:
    """Seconds until delivery at 08:00 UTC; 0 once delivered."""
    return round(max(0, delivery_ms - now_ms) / 1000, 3)


def years_to_expiry(delivery_ms: int, *, now_ms: int) -> float:
    """Time to delivery in years of 365 days (ACT/365), as option models take it."""
    return round(max(0, delivery_ms - now_ms) / 1000 / SECONDS_PER_YEAR, 8)
