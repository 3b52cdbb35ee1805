"""The pure logic under the routes, checked on generated inputs (hypothesis)."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.filters import ORDERING_FIELDS, atm_strike, atm_window, order_rows, parse_ordering
from chain.rows import ROW_FIELDS, RowView
from chain.serializers import parse_expiry
from ingest.normalize import MEASURE_FIELDS, QUOTE_FIELDS
from ingest.symbols import format_expiry_code

maybe_number = st.one_of(st.none(), st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    strike = draw(st.sampled_from([0.4, 1.0, 90000.0, 100000.0, 110000.0, 120000.0]))
    option_type = draw(st.sampled_from(["call", "put"]))
    settle = draw(st.sampled_from(["USDT", "USDC"]))
    expiry, delivery_ms = draw(st.sampled_from([("26DEC25", 1766736000000), ("27MAR26", 1774598400000)]))
    suffix = "-USDT" if settle == "USDT" else ""
    row: dict[str, Any] = {
        "symbol": f"BTC-{expiry}-{strike:g}-{option_type[0].upper()}{suffix}",
        "asset": "BTC",
        "expiry": expiry,
        "expiry_at": "2025-12-26T08:00:00Z",
        "delivery_ms": delivery_ms,
        "strike": strike,
        "strike_text": f"{strike:g}",
        "type": option_type,
        "settle": settle,
    }
    for field in QUOTE_FIELDS:
        row[field] = draw(maybe_number)
    row["ts"] = draw(st.one_of(st.none(), st.integers(min_value=1_600_000_000_000, max_value=1_900_000_000_000)))
    row["received_ts"] = row["ts"]
    for field in MEASURE_FIELDS:
        row[field] = draw(maybe_number)
    return row


def unique_by_symbol(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({row["symbol"]: row for row in items}.values())


@given(st.lists(rows(), max_size=30).map(unique_by_symbol))
def test_it_writes_the_same_json_from_the_stored_rows_as_encoding_them_afresh(chain: list[dict[str, Any]]) -> None:
    stored = {row["symbol"]: orjson.dumps(row) for row in chain}
    view = RowView(list(reversed(chain)), stored_json=stored)
    assert orjson.loads(view.json()) == orjson.loads(orjson.dumps(list(reversed(chain))))
    assert view.json() is view.json(), "written once per view"


@given(st.lists(rows(), max_size=30).map(unique_by_symbol))
def test_it_writes_csv_cells_as_the_json_values(chain: list[dict[str, Any]]) -> None:
    view = RowView(chain, stored_json={row["symbol"]: orjson.dumps(row) for row in chain})
    lines = view.csv().decode().splitlines()
    assert lines[0] == ",".join(ROW_FIELDS)
    assert len(lines) == 1 + len(chain)
    assert view.csv() is view.csv(), "written once per view"


@given(st.lists(rows(), max_size=30), st.sampled_from(sorted(ORDERING_FIELDS)), st.booleans())
def test_it_orders_by_any_field_either_way_with_nulls_last(
    chain: list[dict[str, Any]], name: str, descending: bool
) -> None:
    ordered = order_rows(chain, ordering=[(name, descending)])
    field = ORDERING_FIELDS[name]
    values = [row[field] for row in ordered]
    present = [value for value in values if value is not None]
    assert values == sorted(present, reverse=descending) + [None] * (len(values) - len(present))
    assert sorted(map(id, ordered)) == sorted(map(id, chain))


@given(st.lists(rows(), max_size=40).map(unique_by_symbol), st.integers(min_value=0, max_value=4))
def test_it_keeps_at_most_n_strikes_each_side_of_the_money(chain: list[dict[str, Any]], width: int) -> None:
    kept = atm_window(chain, width=width)
    for key in {(row["expiry"], row["settle"]) for row in kept}:
        strikes = sorted({row["strike"] for row in kept if (row["expiry"], row["settle"]) == key})
        assert len(strikes) <= 2 * width + 1
        group = [row for row in chain if (row["expiry"], row["settle"]) == key]
        assert all(row in kept for row in group if row["strike"] in strikes)


def test_it_takes_the_strike_nearest_the_forward_and_the_lower_on_a_tie() -> None:
    assert atm_strike([100.0, 110.0, 120.0], 113.0) == 110.0
    assert atm_strike([100.0, 110.0, 120.0], 115.0) == 110.0
    assert atm_strike([100.0, 110.0], None) is None
    assert atm_strike([], 100.0) is None


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
def test_it_reads_an_iso_date_and_a_bybit_code_as_the_same_expiry(day: date) -> None:
    code = format_expiry_code(day)
    assert parse_expiry(day.isoformat()) == parse_expiry(code) == parse_expiry(code.lower()) == code


@given(st.text(max_size=30))
def test_it_reads_any_text_as_an_expiry_or_says_why_not(text: str) -> None:
    code = reason = ""
    try:
        code = parse_expiry(text)
    except ValueError as exc:
        reason = str(exc)
    assert bool(code) != bool(reason)
    if code:
        assert parse_expiry(code) == code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("strike", (("strike", False),)),
        ("-open_interest, +strike", (("open_interest", True), ("strike", False))),
        ("expiry,-mark_iv,symbol", (("expiry", False), ("mark_iv", True), ("symbol", False))),
    ],
)
def test_it_reads_an_ordering(text: str, expected: tuple[tuple[str, bool], ...]) -> None:
    assert parse_ordering(text) == expected
