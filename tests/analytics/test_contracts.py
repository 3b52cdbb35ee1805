"""``analytics.contracts``: a contract's own measures, from its row alone, on rows whose answers are known."""

from __future__ import annotations

import math
from typing import Any, cast

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics import measures
from analytics.contracts import MS_PER_YEAR, set_contract_measures
from analytics.measures import black76_price, contract_measures, norm_cdf
from ingest.normalize import MEASURE_FIELDS, ContractRow, static_row
from ingest.symbols import parse_symbol

DELIVERY_MS = 1_829_808_000_000  # 26DEC27 08:00 UTC


def quoted(
    *,
    option_type: str = "call",
    strike: float = 100.0,
    forward: float | None = 100.0,
    vol: float | None = 0.5,
    years: float | None = 1.0,
    bid: tuple[float | None, float | None] = (None, None),
    ask: tuple[float | None, float | None] = (None, None),
) -> dict[str, Any]:
    """A row with the fields the measures read (``years`` before delivery; ``None``: no ticker yet), measured."""
    row: dict[str, Any] = {
        "strike": strike,
        "type": option_type,
        "delivery_ms": DELIVERY_MS,
        "ts": None if years is None else DELIVERY_MS - round(years * MS_PER_YEAR),
        "underlying_price": forward,
        "mark_iv": vol,
        "bid_price": bid[0],
        "bid_iv": bid[1],
        "ask_price": ask[0],
        "ask_iv": ask[1],
    }
    set_contract_measures(row)
    return row


def test_an_at_the_money_call_finishes_in_the_money_with_n_of_minus_half_its_total_vol() -> None:
    # K = F: d2 = -vol x sqrt(T) / 2; 0.5 over 1 year and 0.8 over 0.25 years are total vols of 0.5 and 0.4.
    for vol, years, total_vol in ((0.5, 1.0, 0.5), (0.8, 0.25, 0.4)):
        call = quoted(vol=vol, years=years)
        put = quoted(option_type="put", vol=vol, years=years)
        assert (call["moneyness"], call["log_moneyness"]) == (1.0, 0.0)
        assert call["itm_probability"] == pytest.approx(norm_cdf(-total_vol / 2), rel=1e-14)
        assert put["itm_probability"] == pytest.approx(norm_cdf(total_vol / 2), rel=1e-14)
    assert quoted(vol=0.5, years=1.0)["itm_probability"] == pytest.approx(0.40129367431707627, rel=1e-14)


def test_a_call_and_a_put_of_one_strike_add_up_to_certainty_and_n_d2_is_black76s() -> None:
    for strike in (50.0, 90.0, 100.0, 110.0, 300.0):
        call = quoted(strike=strike, vol=0.6, years=0.1)
        put = quoted(option_type="put", strike=strike, vol=0.6, years=0.1)
        assert call["moneyness"] == strike / 100.0
        assert call["log_moneyness"] == pytest.approx(math.log(strike / 100.0), rel=1e-15, abs=1e-300)
        assert call["itm_probability"] + put["itm_probability"] == pytest.approx(1.0, rel=1e-15)
        # N(d2) is -dC/dK (undiscounted): the price's slope in the strike.
        step = strike * 1e-5
        slope = (
            black76_price(forward=100.0, strike=strike + step, years=0.1, vol=0.6, option_type="call")
            - black76_price(forward=100.0, strike=strike - step, years=0.1, vol=0.6, option_type="call")
        ) / (2 * step)
        assert call["itm_probability"] == pytest.approx(-slope, abs=1e-8)


def test_a_far_tail_keeps_its_digits() -> None:
    call = quoted(strike=300.0, vol=0.1, years=1.0)  # d2 = -11.04
    d2 = -math.log(3.0) / 0.1 - 0.05
    assert call["itm_probability"] == pytest.approx(norm_cdf(d2), rel=1e-12)
    assert 0 < call["itm_probability"] < 1e-27
    assert quoted(option_type="put", strike=300.0, vol=0.1, years=1.0)["itm_probability"] == 1.0


def test_it_shows_a_crossed_book_as_a_negative_spread() -> None:
    row = quoted(bid=(11.5, 0.52), ask=(10.0, 0.49))
    assert row["spread"] == -1.5
    assert row["iv_spread"] == pytest.approx(-0.03)
    normal = quoted(bid=(10.0, 0.49), ask=(11.5, 0.52))
    assert (normal["spread"], normal["iv_spread"]) == (1.5, pytest.approx(0.03))  # a fraction: 3 vol points


NO_MONEYNESS: list[dict[str, Any]] = [{"forward": None}, {"forward": 0.0}, {"forward": -100.0}]
NO_ITM_PROBABILITY: list[dict[str, Any]] = [
    *NO_MONEYNESS,
    {"vol": None},
    {"vol": 0.0},
    {"vol": -0.5},
    {"years": None},  # no ticker yet: no ts
    {"years": 0.0},  # at delivery
    {"years": -0.01},  # after it
]


@pytest.mark.parametrize("inputs", NO_ITM_PROBABILITY, ids=lambda inputs: repr(inputs))
def test_it_gives_null_exactly_where_the_docs_say(inputs: dict[str, Any]) -> None:
    row = quoted(**inputs, bid=(10.0, 0.49), ask=(11.0, 0.51))
    assert row["itm_probability"] is None
    no_moneyness = inputs in NO_MONEYNESS
    assert (row["moneyness"] is None, row["log_moneyness"] is None) == (no_moneyness, no_moneyness)
    assert row["spread"] == 1.0  # the spreads need only the book
    assert row["iv_spread"] == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("bid", "ask", "spread", "iv_spread"),
    [
        ((None, None), (11.0, 0.51), None, None),
        ((10.0, 0.49), (None, None), None, None),
        ((10.0, None), (11.0, 0.51), 1.0, None),
    ],
)
def test_a_spread_needs_both_sides(bid: Any, ask: Any, spread: float | None, iv_spread: float | None) -> None:
    row = quoted(bid=bid, ask=ask)
    assert (row["spread"], row["iv_spread"]) == (spread, iv_spread)
    assert row["itm_probability"] is not None


def test_it_agrees_with_contract_measures_given_the_rows_own_forward_and_time() -> None:
    assert MS_PER_YEAR == measures.MS_PER_YEAR
    base = static_row(parse_symbol("BTC-26DEC27-120000-P-USDT"))
    ts = base["delivery_ms"] - 40 * 86_400_000
    row = cast(
        ContractRow,
        {
            **base,
            "underlying_price": 116_194.94,
            "mark_iv": 0.4255,
            "ts": ts,
            "bid_price": 9_800.0,
            "bid_iv": 0.41,
            "ask_price": 10_450.0,
            "ask_iv": 0.44,
        },
    )
    set_contract_measures(row)  # type: ignore[arg-type]
    years = (row["delivery_ms"] - ts) / measures.MS_PER_YEAR
    expected = contract_measures(row=row, forward=row["underlying_price"], years=years)
    assert expected["missing"] == {}
    for name in MEASURE_FIELDS:
        assert row[name] == pytest.approx(expected[name], rel=1e-13), name  # type: ignore[literal-required]


# Anything at all, as a hand-made row might hold: NaN, ±inf, huge, subnormal, zero, negative, nothing.
anything = st.one_of(st.none(), st.floats(), st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7e308]))


@given(
    st.sampled_from(["call", "put"]),
    st.one_of(st.floats(1e-3, 1e8), st.floats()),
    anything,
    anything,
    st.one_of(st.none(), st.integers(DELIVERY_MS - 10 * MS_PER_YEAR, DELIVERY_MS + MS_PER_YEAR)),
    anything,
    anything,
    anything,
    anything,
)
def test_any_row_gets_finite_numbers_or_nulls_never_nan_or_infinity(
    option_type: str,
    strike: float,
    forward: float | None,
    vol: float | None,
    ts: int | None,
    bid_price: float | None,
    bid_iv: float | None,
    ask_price: float | None,
    ask_iv: float | None,
) -> None:
    row: dict[str, Any] = {
        "strike": strike,
        "type": option_type,
        "delivery_ms": DELIVERY_MS,
        "ts": ts,
        "underlying_price": forward,
        "mark_iv": vol,
        "bid_price": bid_price,
        "bid_iv": bid_iv,
        "ask_price": ask_price,
        "ask_iv": ask_iv,
    }
    set_contract_measures(row)
    values = {name: row[name] for name in MEASURE_FIELDS}
    # orjson writes NaN and Infinity as null without a word: check before serialising.
    assert all(value is None or (type(value) is float and math.isfinite(value)) for value in values.values())
    assert orjson.loads(orjson.dumps(values)) == values
    if values["itm_probability"] is not None:
        assert 0.0 <= values["itm_probability"] <= 1.0
        assert values["moneyness"] is not None
