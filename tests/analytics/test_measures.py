"""``analytics.measures`` on chains priced for the purpose: Black-76 from a known smile, so each answer is known.

The smiles are functions of log-moneyness k = ln(K/F). Where an answer is exact by construction the tolerance is
a rounding one (1e-9); where the module interpolates a curved smile the test states the bound it allows and why.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from statistics import NormalDist
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.measures import (
    CONSTANT_MATURITY_DAYS,
    MS_PER_YEAR,
    ExpirySummary,
    OptionType,
    Settle,
    asset_analytics,
    black76_delta,
    black76_gamma,
    black76_price,
    contract_measures,
    expiry_analytics,
    norm_cdf,
)
from ingest.normalize import ContractRow
from ingest.symbols import format_expiry_code, format_strike

NOW = datetime(2026, 6, 1, 8, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
FORWARD = 100_000.0
Smile = Callable[[float], float]
PerContract = Callable[[float, OptionType], float | None]


def quadratic_smile(atm: float, skew: float = 0.0, curvature: float = 0.0) -> Smile:
    """vol(k) = atm + skew·k + curvature·k²."""
    return lambda k: atm + skew * k + curvature * k * k


def linear_variance_smile(atm: float, slope: float) -> Smile:
    """vol(k)² = atm² + slope·k: total variance linear in k, so interpolating it between two strikes is exact."""
    return lambda k: math.sqrt(atm * atm + slope * k)


def grid(low: float, high: float, step: float) -> list[float]:
    return [low + step * i for i in range(round((high - low) / step) + 1)]


def contract_row(
    *,
    strike: float,
    option_type: OptionType,
    vol: float | None,
    forward: float | None,
    days: float,
    settle: Settle = "USDT",
    index_price: float | None = None,
    open_interest: float | None = 10.0,
    volume: float | None = 2.0,
    half_spread_iv: float = 0.01,
    asset: str = "BTC",
) -> ContractRow:
    """One contract as the ingest stores it, its mark, quotes and greeks priced by Black-76 at ``vol``.

    The bid and ask are the prices at ``vol`` ∓ ``half_spread_iv``; Bybit's ``delta`` and ``gamma`` fields are
    rounded as Bybit rounds them (6 and 8 decimals), so a module that read them would be visibly off.
    """
    delivery = NOW + timedelta(days=days)
    expiry = format_expiry_code(delivery.date())
    strike_text = format_strike(Decimal(repr(strike)))
    suffix = "-USDT" if settle == "USDT" else ""
    years = days / 365
    mark = bid = ask = delta = gamma = None
    if vol is not None and forward is not None and years > 0:
        mark = black76_price(forward=forward, strike=strike, years=years, vol=vol, option_type=option_type)
        if vol > half_spread_iv:
            bid = black76_price(
                forward=forward, strike=strike, years=years, vol=vol - half_spread_iv, option_type=option_type
            )
        ask = black76_price(
            forward=forward, strike=strike, years=years, vol=vol + half_spread_iv, option_type=option_type
        )
        delta = round(black76_delta(forward=forward, strike=strike, years=years, vol=vol, option_type=option_type), 6)
        gamma = round(black76_gamma(forward=forward, strike=strike, years=years, vol=vol), 8)
    index = index_price if index_price is not None else forward
    return {
        "symbol": f"{asset}-{expiry}-{strike_text}-{option_type[0].upper()}{suffix}",
        "asset": asset,
        "expiry": expiry,
        "expiry_at": delivery.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "delivery_ms": NOW_MS + round(days * DAY_MS),
        "strike": strike,
        "strike_text": strike_text,
        "type": option_type,
        "settle": settle,
        "bid_price": bid,
        "bid_size": 1.0 if bid is not None else None,
        "bid_iv": vol - half_spread_iv if bid is not None and vol is not None else None,
        "ask_price": ask,
        "ask_size": 1.0 if ask is not None else None,
        "ask_iv": vol + half_spread_iv if ask is not None and vol is not None else None,
        "crossed": False,
        "last_price": mark,
        "mark_price": mark,
        "mark_iv": vol,
        "index_price": index,
        "underlying_price": forward,
        "delta": delta,
        "gamma": gamma,
        "theta": None,
        "vega": None,
        "open_interest": open_interest,
        "volume_24h": volume,
        # Bybit's turnover24h is notional: contracts x the index price (docs/analytics.md).
        "turnover_24h": volume * index if volume is not None and index is not None else None,
        "total_volume": None,
        "total_turnover": None,
        "high_price_24h": None,
        "low_price_24h": None,
        "change_24h": None,
        "predicted_delivery_price": None,
        "ts": NOW_MS - 1000,
        "received_ts": NOW_MS - 990,
        # The ingest's own per-contract measures (analytics.contracts): analytics.measures does not read them.
        "moneyness": None,
        "log_moneyness": None,
        "itm_probability": None,
        "spread": None,
        "iv_spread": None,
    }


def priced_chain(
    *,
    strikes: Iterable[float],
    vol: Smile,
    forward: float = FORWARD,
    days: float = 30.0,
    settle: Settle = "USDT",
    basis: float = 0.05,
    open_interest: PerContract = lambda strike, option_type: 10.0,
    volume: PerContract = lambda strike, option_type: 2.0,
    asset: str = "BTC",
) -> list[ContractRow]:
    """A call and a put at each strike of one expiry, priced from the smile ``vol(k)``; the index is set so that
    the annualised basis is ``basis``."""
    years = days / 365
    index_price = forward / (1 + basis * years) if years > 0 else forward
    return [
        contract_row(
            strike=strike,
            option_type=option_type,
            vol=vol(math.log(strike / forward)),
            forward=forward,
            days=days,
            settle=settle,
            index_price=index_price,
            open_interest=open_interest(strike, option_type),
            volume=volume(strike, option_type),
            asset=asset,
        )
        for strike in strikes
        for option_type in ("call", "put")
    ]


def only_expiry(rows: list[ContractRow], settle: Settle = "USDT") -> ExpirySummary:
    summaries = [summary for summary in asset_analytics(rows=rows, now_ms=NOW_MS)["expiries"]]
    matching = [summary for summary in summaries if summary["settle"] == settle]
    assert len(matching) == 1
    return matching[0]


def strike_at_delta(*, target: float, option_type: OptionType, vol: Smile, forward: float, years: float) -> float:
    """The strike whose Black-76 delta, at the smile's IV there, is ``target``: by bisection."""
    low, high = (forward, forward * 10) if option_type == "call" else (forward / 10, forward)
    for _ in range(200):
        middle = (low + high) / 2
        delta = black76_delta(
            forward=forward, strike=middle, years=years, vol=vol(math.log(middle / forward)), option_type=option_type
        )
        # Delta falls as the strike rises, for calls and puts alike.
        if delta > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def known(value: float | None) -> float:
    assert value is not None
    return value


def as_dict(result: Any) -> dict[str, Any]:
    """A result, to look its fields up by a name made at run time."""
    return dict(result)


def floats_in(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from floats_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from floats_in(item)


# --- Black-76 --------------------------------------------------------------------------------------------------


def test_it_prices_calls_and_puts_that_keep_put_call_parity_on_the_forward() -> None:
    for strike in (60_000.0, 100_000.0, 140_000.0):
        call = black76_price(forward=FORWARD, strike=strike, years=0.25, vol=0.6, option_type="call")
        put = black76_price(forward=FORWARD, strike=strike, years=0.25, vol=0.6, option_type="put")
        assert call - put == pytest.approx(FORWARD - strike, abs=1e-6)


def test_it_gives_delta_and_gamma_as_the_derivatives_of_the_price() -> None:
    bump = 0.01
    for option_type in ("call", "put"):
        price_up = black76_price(forward=FORWARD + bump, strike=110_000.0, years=0.1, vol=0.5, option_type=option_type)
        price_down = black76_price(
            forward=FORWARD - bump, strike=110_000.0, years=0.1, vol=0.5, option_type=option_type
        )
        delta = black76_delta(forward=FORWARD, strike=110_000.0, years=0.1, vol=0.5, option_type=option_type)
        assert delta == pytest.approx((price_up - price_down) / (2 * bump), rel=1e-6)
    delta_up = black76_delta(forward=FORWARD + 1, strike=110_000.0, years=0.1, vol=0.5, option_type="call")
    delta_down = black76_delta(forward=FORWARD - 1, strike=110_000.0, years=0.1, vol=0.5, option_type="call")
    gamma = black76_gamma(forward=FORWARD, strike=110_000.0, years=0.1, vol=0.5)
    assert gamma == pytest.approx((delta_up - delta_down) / 2, rel=1e-6)


def test_it_keeps_the_far_tails_of_the_normal_distribution() -> None:
    assert norm_cdf(0.0) == 0.5
    assert norm_cdf(1.959963984540054) == pytest.approx(0.975, abs=1e-12)
    assert norm_cdf(-10.0) == pytest.approx(7.61985302416e-24, rel=1e-9, abs=0)


def test_it_refuses_to_price_without_a_positive_volatility() -> None:
    with pytest.raises(ValueError, match="vol"):
        black76_price(forward=FORWARD, strike=FORWARD, years=0.1, vol=0.0, option_type="call")


# --- Forward, time, basis --------------------------------------------------------------------------------------


def test_it_takes_the_forward_as_the_median_underlying_price_and_annualises_the_basis() -> None:
    rows = priced_chain(strikes=grid(90_000, 110_000, 5_000), vol=quadratic_smile(0.5), days=73.0, basis=0.08)
    rows[0] = {**rows[0], "underlying_price": 1.0}  # one stale row does not move the median
    summary = only_expiry(rows)
    assert summary["forward"] == FORWARD
    assert summary["ms_to_delivery"] == 73 * DAY_MS
    assert summary["years_to_delivery"] == pytest.approx(73 / 365, rel=1e-12)
    assert summary["basis_annualised"] == pytest.approx(0.08, rel=1e-9)


def test_it_gives_a_delivered_expiry_no_time_and_no_model_figures_but_keeps_its_activity() -> None:
    rows = priced_chain(strikes=grid(90_000, 110_000, 5_000), vol=quadratic_smile(0.5), days=1.0)
    summary = only_expiry([{**row, "delivery_ms": NOW_MS - 1} for row in rows])
    assert summary["years_to_delivery"] is None
    assert "delivered" in summary["missing"]["years_to_delivery"]
    for name in ("atm_iv", "rr_25d", "straddle", "implied_move", "net_gex", "gamma_flip", "basis_annualised"):
        assert as_dict(summary)[name] is None
        assert "delivered" in summary["missing"][name]
    assert summary["call_open_interest"] == 50.0
    assert summary["max_pain"] is not None


# --- ATM IV ----------------------------------------------------------------------------------------------------


def test_it_reads_the_atm_iv_exactly_when_total_variance_is_linear_in_log_moneyness() -> None:
    # Strikes 2,500 apart and the forward between two of them: the interpolation, linear in total variance
    # against k, is exact for this smile. Interpolating the vol itself would be off by 5e-5 here.
    rows = priced_chain(
        strikes=grid(80_000, 120_000, 2_500), vol=linear_variance_smile(0.6, -0.8), forward=101_000.0, days=45
    )
    summary = only_expiry(rows)
    assert summary["atm_iv"] == pytest.approx(0.6, abs=1e-12)
    assert summary["atm_strike"] == 100_000.0


def test_it_reads_the_atm_iv_of_a_curved_smile_within_the_interpolation_error_bound() -> None:
    atm, skew, curvature, forward = 0.6, -0.1, 0.5, 101_000.0
    rows = priced_chain(
        strikes=grid(80_000, 120_000, 2_500), vol=quadratic_smile(atm, skew, curvature), forward=forward, days=45
    )
    summary = only_expiry(rows)
    # Linear interpolation of f(k) = vol(k)² over [k_low, k_high] errs by at most (k_high - k_low)²/8 · max|f''|,
    # with f'' = 2(vol'² + vol·vol''); the vol then errs by at most that over 2·min(vol) on the interval.
    k_low, k_high = math.log(100_000 / forward), math.log(102_500 / forward)
    k_far = max(-k_low, k_high)
    vol_max = atm + abs(skew) * k_far + curvature * k_far**2
    vol_min = atm - abs(skew) * k_far
    second_derivative = 2 * ((abs(skew) + 2 * curvature * k_far) ** 2 + vol_max * 2 * curvature)
    bound = (k_high - k_low) ** 2 / 8 * second_derivative / (2 * vol_min)
    assert bound < 1e-4  # 0.01 vol points: the grid is fine enough for the test to mean something
    assert summary["atm_iv"] == pytest.approx(atm, abs=bound)


def test_it_takes_the_calls_iv_at_a_strike_exactly_at_the_forward() -> None:
    rows = priced_chain(strikes=grid(90_000, 110_000, 5_000), vol=quadratic_smile(0.5, -0.2))
    rows = [{**row, "mark_iv": 0.9} if row["type"] == "put" and row["strike"] == FORWARD else row for row in rows]
    assert only_expiry(rows)["atm_iv"] == pytest.approx(0.5, abs=1e-12)


def test_it_reads_the_atm_iv_from_the_out_of_the_money_side_only() -> None:
    # In-the-money IVs set to nonsense: calls below the forward, puts above it.
    rows = priced_chain(strikes=grid(80_000, 120_000, 2_500), vol=linear_variance_smile(0.6, -0.8), forward=101_000.0)
    rows = [{**row, "mark_iv": 3.0} if (row["type"] == "call") == (row["strike"] < 101_000.0) else row for row in rows]
    assert only_expiry(rows)["atm_iv"] == pytest.approx(0.6, abs=1e-12)


def test_it_skips_a_strike_without_a_mark_iv_and_brackets_the_forward_with_the_next() -> None:
    rows = priced_chain(strikes=grid(80_000, 120_000, 2_500), vol=linear_variance_smile(0.6, -0.8), forward=101_000.0)
    rows = [{**row, "mark_iv": None} if row["strike"] == 102_500.0 else row for row in rows]
    assert only_expiry(rows)["atm_iv"] == pytest.approx(0.6, abs=1e-12)


def test_it_has_no_atm_iv_when_the_forward_is_outside_the_strikes() -> None:
    rows = priced_chain(strikes=grid(80_000, 95_000, 5_000), vol=quadratic_smile(0.5))
    summary = only_expiry(rows)
    assert summary["atm_iv"] is None
    assert summary["missing"]["atm_iv"].startswith("no out-of-the-money quote above the forward")
    assert summary["implied_move"] is None
    assert summary["missing"]["implied_move"].startswith("no atm iv:")


def test_it_has_no_atm_iv_with_one_strike_only_and_says_so() -> None:
    summary = only_expiry(priced_chain(strikes=[95_000.0], vol=quadratic_smile(0.5)))
    assert summary["atm_iv"] is None
    assert summary["missing"]["atm_iv"].startswith("one strike only (95000)")
    assert summary["max_pain"] == 95_000.0


# --- Skew ------------------------------------------------------------------------------------------------------


def test_it_measures_risk_reversals_and_butterflies_at_strikes_placed_on_those_deltas() -> None:
    days, years = 30.0, 30 / 365
    smile = quadratic_smile(0.55, -0.25, 0.6)  # puts over calls: the risk reversals are negative
    placed = {
        (target, option_type): strike_at_delta(
            target=target if option_type == "call" else -target,
            option_type=option_type,
            vol=smile,
            forward=FORWARD,
            years=years,
        )
        for target in (0.25, 0.10)
        for option_type in ("call", "put")
    }
    strikes = sorted({*grid(60_000, 150_000, 5_000), *placed.values()})
    summary = only_expiry(priced_chain(strikes=strikes, vol=smile, days=days))
    assert summary["atm_iv"] == pytest.approx(0.55, abs=1e-12)  # the forward is a strike
    for target, label in ((0.25, "25d"), (0.10, "10d")):
        call_vol = smile(math.log(placed[(target, "call")] / FORWARD))
        put_vol = smile(math.log(placed[(target, "put")] / FORWARD))
        figures = as_dict(summary)
        assert figures[f"call_{label}_iv"] == pytest.approx(call_vol, abs=1e-9)
        assert figures[f"put_{label}_iv"] == pytest.approx(put_vol, abs=1e-9)
        assert figures[f"rr_{label}"] == pytest.approx(call_vol - put_vol, abs=1e-9)
        assert figures[f"rr_{label}"] < 0
        butterfly = (call_vol + put_vol) / 2 - 0.55
        assert figures[f"bf_{label}"] == pytest.approx(butterfly, abs=1e-9)


def test_it_gives_a_positive_risk_reversal_when_calls_are_bid_over_puts() -> None:
    summary = only_expiry(priced_chain(strikes=grid(50_000, 200_000, 2_500), vol=quadratic_smile(0.5, 0.3, 0.2)))
    assert summary["rr_25d"] is not None
    assert summary["rr_25d"] > 0


def test_it_interpolates_a_delta_between_grid_strikes_within_their_ivs() -> None:
    days, years = 30.0, 30 / 365
    smile = quadratic_smile(0.55, -0.25, 0.6)
    strikes = grid(60_000, 150_000, 1_000)
    summary = only_expiry(priced_chain(strikes=strikes, vol=smile, days=days))
    cases: list[tuple[float, OptionType, str]] = [(0.25, "call", "call_25d_iv"), (-0.25, "put", "put_25d_iv")]
    for target, option_type, name in cases:
        true_strike = strike_at_delta(target=target, option_type=option_type, vol=smile, forward=FORWARD, years=years)
        below = max(strike for strike in strikes if strike <= true_strike)
        above = min(strike for strike in strikes if strike > true_strike)
        vols = sorted(smile(math.log(strike / FORWARD)) for strike in (below, above))
        # The smile is monotone between two neighbouring grid strikes here, so the true IV and the interpolated
        # one both lie between the two strikes' IVs: that is the error allowed (< 0.5 vol points on this grid).
        assert vols[1] - vols[0] < 0.005
        assert vols[0] <= as_dict(summary)[name] <= vols[1]


def test_it_anchors_both_wings_on_a_strike_exactly_at_the_forward() -> None:
    # A coarse grid: the first strike either side of the forward is already beyond 25 delta, so the 25-delta
    # put lies between the put at the forward and the next put down, as the call lies between their calls.
    rows = priced_chain(strikes=[60_000.0, 80_000.0, FORWARD, 125_000.0, 160_000.0], vol=quadratic_smile(0.8))
    summary = only_expiry(rows)
    assert summary["put_25d_iv"] == pytest.approx(0.8, abs=1e-12)
    assert summary["call_25d_iv"] == pytest.approx(0.8, abs=1e-12)
    assert summary["rr_25d"] == pytest.approx(0.0, abs=1e-12)


def test_it_computes_its_own_greeks_and_needs_none_of_bybits() -> None:
    rows = priced_chain(strikes=grid(60_000, 150_000, 2_500), vol=quadratic_smile(0.55, -0.25, 0.6))
    without = [cast(ContractRow, {**row, "delta": None, "gamma": None}) for row in rows]
    assert only_expiry(without) == only_expiry(rows)
    assert only_expiry(without)["rr_25d"] is not None


def test_it_never_extrapolates_a_delta_the_chain_does_not_reach() -> None:
    summary = only_expiry(priced_chain(strikes=grid(97_000, 103_000, 1_000), vol=quadratic_smile(0.6), days=300))
    assert summary["call_25d_iv"] is None
    assert summary["missing"]["call_25d_iv"].startswith("no 25-delta call in the chain")
    assert summary["rr_25d"] is None
    assert summary["missing"]["rr_25d"].startswith("no call 25d iv: no 25-delta call")
    assert summary["bf_25d"] is None


def test_it_reads_the_25_and_10_delta_strikes_where_black76_puts_them_on_a_flat_smile() -> None:
    # A flat smile: a call of forward delta N(d1) = D sits at K = F·exp(-v·N⁻¹(D) + v²/2), v = vol·√T, and a
    # put of delta -D where N(d1) = 1 - D. Those strikes are listed, so the one read is theirs (to rounding).
    vol, days = 0.6, 30.0
    total_vol = vol * math.sqrt(days / 365)
    inverse = NormalDist().inv_cdf
    placed = {
        f"{option_type}_{label}_strike": FORWARD * math.exp(-total_vol * inverse(n_d1) + total_vol**2 / 2)
        for target, label in ((0.25, "25d"), (0.10, "10d"))
        for option_type, n_d1 in (("call", target), ("put", 1 - target))
    }
    strikes = sorted({*grid(40_000, 200_000, 5_000), *placed.values()})
    summary = as_dict(only_expiry(priced_chain(strikes=strikes, vol=quadratic_smile(vol), days=days)))
    for name, strike in placed.items():
        assert summary[name] == pytest.approx(strike, rel=1e-9), name
        assert summary[name.replace("_strike", "_iv")] == pytest.approx(vol, abs=1e-12)
    assert summary["put_10d_strike"] < summary["put_25d_strike"] < FORWARD
    assert FORWARD < summary["call_25d_strike"] < summary["call_10d_strike"]
    assert not {name for name in summary["missing"] if name.endswith("_strike")}


def test_it_reads_the_strike_at_a_delta_with_the_same_contracts_and_weights_as_the_iv() -> None:
    smile = quadratic_smile(0.55, -0.25, 0.6)
    strikes = grid(60_000, 150_000, 2_500)
    summary = as_dict(only_expiry(priced_chain(strikes=strikes, vol=smile, days=30.0)))
    for option_type, label in (("call", "25d"), ("put", "25d"), ("call", "10d"), ("put", "10d")):
        iv, strike = summary[f"{option_type}_{label}_iv"], summary[f"{option_type}_{label}_strike"]
        # The two listed strikes either side, and the share of the way between them at which both were read.
        below = max(listed for listed in strikes if listed <= strike)
        above = min(listed for listed in strikes if listed >= strike)
        assert below < strike < above, (option_type, label)
        vol_below, vol_above = (smile(math.log(listed / FORWARD)) for listed in (below, above))
        share = (strike - below) / (above - below)
        assert iv == pytest.approx(vol_below + (vol_above - vol_below) * share, abs=1e-12), (option_type, label)


def test_it_has_no_strike_at_a_delta_the_chain_does_not_reach_and_gives_the_ivs_reason() -> None:
    summary = only_expiry(priced_chain(strikes=grid(97_000, 103_000, 1_000), vol=quadratic_smile(0.6), days=300))
    assert summary["call_25d_strike"] is None
    assert summary["missing"]["call_25d_strike"] == summary["missing"]["call_25d_iv"]
    assert summary["missing"]["call_25d_strike"].startswith("no 25-delta call in the chain")
    delivered = only_expiry(
        [
            {**row, "delivery_ms": NOW_MS - 1}
            for row in priced_chain(strikes=grid(90_000, 110_000, 5_000), vol=quadratic_smile(0.5))
        ]
    )
    for name in ("call_25d_strike", "put_25d_strike", "call_10d_strike", "put_10d_strike"):
        assert as_dict(delivered)[name] is None
        assert "delivered" in delivered["missing"][name]


# --- Expected move ---------------------------------------------------------------------------------------------


def test_it_reads_the_expected_move_from_the_atm_straddle_and_from_the_atm_iv() -> None:
    days, forward = 20.0, 101_300.0
    rows = priced_chain(
        strikes=grid(80_000, 120_000, 2_500), vol=linear_variance_smile(0.6, -0.8), forward=forward, days=days
    )
    summary = only_expiry(rows)
    atm = [row for row in rows if row["strike"] == 102_500.0]  # the nearest strike to 101,300
    mids = [(known(row["bid_price"]) + known(row["ask_price"])) / 2 for row in atm]
    assert summary["atm_strike"] == 102_500.0
    assert summary["straddle"] == pytest.approx(sum(mids), rel=1e-12)
    assert summary["straddle_of_forward"] == pytest.approx(sum(mids) / forward, rel=1e-12)
    move = forward * 0.6 * math.sqrt(days / 365)
    assert summary["implied_move"] == pytest.approx(move, rel=1e-9)
    assert summary["implied_move_of_forward"] == pytest.approx(0.6 * math.sqrt(days / 365), rel=1e-9)


def test_it_has_no_straddle_without_two_sided_quotes_at_the_atm_strike() -> None:
    rows = priced_chain(strikes=grid(90_000, 110_000, 5_000), vol=quadratic_smile(0.5))
    rows = [
        {**row, "bid_price": None, "bid_size": None, "bid_iv": None}
        if row["strike"] == FORWARD and row["type"] == "put"
        else row
        for row in rows
    ]
    summary = only_expiry(rows)
    assert summary["straddle"] is None
    assert summary["missing"]["straddle"] == "the put at the ATM strike 100000 has no bid"
    assert summary["missing"]["straddle_of_forward"].startswith("no straddle:")
    assert summary["implied_move"] is not None


# --- Activity --------------------------------------------------------------------------------------------------


def test_it_adds_up_open_interest_volume_and_notional_with_put_call_ratios() -> None:
    rows = priced_chain(
        strikes=[90_000.0, 100_000.0, 110_000.0],
        vol=quadratic_smile(0.5),
        basis=0.0,
        open_interest=lambda strike, option_type: 4.0 if option_type == "call" else 6.0,
        volume=lambda strike, option_type: 1.0 if option_type == "call" else 0.5,
    )
    summary = only_expiry(rows)
    assert summary["call_open_interest"] == 12.0
    assert summary["put_open_interest"] == 18.0
    assert summary["put_call_open_interest"] == 1.5
    assert summary["call_volume_24h"] == 3.0
    assert summary["put_call_volume_24h"] == 0.5
    assert summary["call_notional_24h"] == pytest.approx(3.0 * FORWARD)
    assert summary["put_notional_24h"] == pytest.approx(1.5 * FORWARD)


def test_it_has_no_put_call_ratio_when_the_calls_figure_is_zero() -> None:
    rows = priced_chain(
        strikes=[90_000.0, 100_000.0],
        vol=quadratic_smile(0.5),
        volume=lambda strike, option_type: 0.0 if option_type == "call" else 1.0,
        open_interest=lambda strike, option_type: None if option_type == "call" else 1.0,
    )
    summary = only_expiry(rows)
    assert summary["put_call_volume_24h"] is None
    assert summary["missing"]["put_call_volume_24h"] == "the calls' 24 h volume is 0"
    assert summary["call_open_interest"] is None
    assert summary["missing"]["call_open_interest"] == "no call reports its open interest"
    assert summary["missing"]["put_call_open_interest"].startswith("no call open interest:")


# --- Max pain --------------------------------------------------------------------------------------------------


def brute_force_max_pain(rows: list[ContractRow]) -> float:
    """Every listed strike tried; the lowest of the least painful."""
    strikes = sorted({row["strike"] for row in rows})

    def pain(settlement: float) -> float:
        total = 0.0
        for row in rows:
            open_interest = row["open_interest"] or 0.0
            if row["type"] == "call":
                total += open_interest * max(0.0, settlement - row["strike"])
            else:
                total += open_interest * max(0.0, row["strike"] - settlement)
        return total

    return min(strikes, key=lambda strike: (pain(strike), strike))


@settings(deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=50), min_size=2, max_size=16),
    st.lists(st.integers(min_value=0, max_value=50), min_size=2, max_size=16),
)
def test_it_finds_max_pain_as_trying_every_strike_does(call_oi: list[int], put_oi: list[int]) -> None:
    # Whole strikes and whole open interest: every pain is an exact integer, so ties are exact too.
    strikes = [float(90_000 + 1_000 * i) for i in range(max(len(call_oi), len(put_oi)))]
    by_strike = {(strike, "call"): float(call_oi[i % len(call_oi)]) for i, strike in enumerate(strikes)} | {
        (strike, "put"): float(put_oi[i % len(put_oi)]) for i, strike in enumerate(strikes)
    }
    rows = priced_chain(
        strikes=strikes, vol=quadratic_smile(0.5), open_interest=lambda strike, kind: by_strike[(strike, kind)]
    )
    summary = only_expiry(rows)
    if not any(by_strike.values()):
        assert summary["max_pain"] is None
        assert summary["missing"]["max_pain"] == "no open interest in this expiry"
    else:
        assert summary["max_pain"] == brute_force_max_pain(rows)


def test_it_breaks_a_max_pain_tie_to_the_lowest_strike() -> None:
    # One call and one put, both on 10 contracts at 95,000 and 105,000: every strike between pays 10 x 10,000.
    open_interest = {(95_000.0, "call"): 10.0, (105_000.0, "put"): 10.0}
    rows = priced_chain(
        strikes=grid(90_000, 110_000, 5_000),
        vol=quadratic_smile(0.5),
        open_interest=lambda strike, kind: open_interest.get((strike, kind), 0.0),
    )
    assert only_expiry(rows)["max_pain"] == 95_000.0


# --- Gamma exposure --------------------------------------------------------------------------------------------


def skewed_positioning(strike: float, option_type: OptionType) -> float:
    """Put open interest heavy below the money, call open interest heavy above it."""
    if option_type == "put":
        return 40.0 if strike < FORWARD else 5.0
    return 30.0 if strike > FORWARD else 3.0


def net_dealer_gex(rows: list[ContractRow], *, spot: float, years: float) -> float:
    """Σ sign·Γ·OI·S²·0.01 with every contract's gamma at forward ``spot``: calls +, puts -."""
    total = 0.0
    for row in rows:
        if not row["open_interest"] or row["mark_iv"] is None:
            continue
        gamma = black76_gamma(forward=spot, strike=row["strike"], years=years, vol=row["mark_iv"])
        sign = 1.0 if row["type"] == "call" else -1.0
        total += sign * gamma * row["open_interest"] * spot * spot * 0.01
    return total


def test_it_gives_gamma_exposure_by_strike_as_summed_by_hand_with_its_walls() -> None:
    days, years = 14.0, 14 / 365
    strikes = grid(80_000, 120_000, 2_500)
    rows = priced_chain(
        strikes=strikes, vol=quadratic_smile(0.5, -0.2, 0.4), days=days, open_interest=skewed_positioning
    )
    rows = [
        {**row, "open_interest": 200.0} if row["strike"] == 115_000.0 and row["type"] == "call" else row for row in rows
    ]
    analytics = expiry_analytics(rows=rows, expiry=rows[0]["expiry"], now_ms=NOW_MS)
    assert analytics is not None
    assert [level["strike"] for level in analytics["by_strike"]] == strikes
    by_hand: dict[tuple[float, str], float] = {}
    for row in rows:
        gamma = black76_gamma(forward=FORWARD, strike=row["strike"], years=years, vol=known(row["mark_iv"]))
        sign = 1.0 if row["type"] == "call" else -1.0
        by_hand[(row["strike"], row["type"])] = sign * gamma * known(row["open_interest"]) * FORWARD**2 * 0.01
    for level in analytics["by_strike"]:
        assert level["call_gex"] == pytest.approx(by_hand[(level["strike"], "call")], rel=1e-12)
        assert level["put_gex"] == pytest.approx(by_hand[(level["strike"], "put")], rel=1e-12)
        assert known(level["put_gex"]) < 0 < known(level["call_gex"])
        assert level["net_gex"] == pytest.approx(known(level["call_gex"]) + known(level["put_gex"]), rel=1e-12)
    assert analytics["net_gex"] == pytest.approx(math.fsum(by_hand.values()), rel=1e-12)
    assert analytics["call_wall"] == max(strikes, key=lambda strike: by_hand[(strike, "call")])
    assert analytics["put_wall"] == max(strikes, key=lambda strike: -by_hand[(strike, "put")])
    assert analytics["call_wall"] == 115_000.0


def test_it_finds_the_gamma_flip_where_net_dealer_gamma_at_that_spot_changes_sign() -> None:
    days, years = 21.0, 21 / 365
    strikes = grid(70_000, 130_000, 2_500)
    rows = priced_chain(
        strikes=strikes, vol=quadratic_smile(0.5, -0.2, 0.4), days=days, open_interest=skewed_positioning
    )
    summary = only_expiry(rows)
    net = [(strike, net_dealer_gex(rows, spot=strike, years=years)) for strike in strikes]
    crossings = [
        low + (high - low) * g_low / (g_low - g_high)
        for (low, g_low), (high, g_high) in pairwise(net)
        if (g_low > 0) != (g_high > 0)
    ]
    assert crossings, "the positioning is built to have a flip"
    expected = min(crossings, key=lambda spot: abs(spot - FORWARD))
    assert summary["gamma_flip"] == pytest.approx(expected, rel=1e-9)
    assert (
        net_dealer_gex(rows, spot=expected - 2_500, years=years)
        < 0
        < net_dealer_gex(rows, spot=expected + 2_500, years=years)
    )


def test_it_takes_the_gamma_flip_nearest_the_forward_when_there_are_several() -> None:
    # Puts heavy far below and just above the money, calls heavy below it: net dealer gamma goes negative,
    # positive, negative again as the spot rises, and the upper crossing is the one nearer the forward.
    def positioning(strike: float, option_type: OptionType) -> float:
        if option_type == "call":
            return 40.0 if 85_000 <= strike <= 95_000 else 2.0
        return 50.0 if strike <= 75_000 or strike >= 105_000 else 2.0

    days, years = 21.0, 21 / 365
    strikes = grid(60_000, 140_000, 2_500)
    rows = priced_chain(strikes=strikes, vol=quadratic_smile(0.5, -0.2, 0.4), days=days, open_interest=positioning)
    net = [(strike, net_dealer_gex(rows, spot=strike, years=years)) for strike in strikes]
    crossings = [
        low + (high - low) * g_low / (g_low - g_high)
        for (low, g_low), (high, g_high) in pairwise(net)
        if (g_low > 0) != (g_high > 0)
    ]
    assert len(crossings) == 2
    assert abs(crossings[1] - FORWARD) < abs(crossings[0] - FORWARD)
    assert only_expiry(rows)["gamma_flip"] == pytest.approx(crossings[1], rel=1e-9)


def test_it_has_no_gamma_flip_or_put_wall_when_only_calls_are_open() -> None:
    rows = priced_chain(
        strikes=grid(90_000, 110_000, 2_500),
        vol=quadratic_smile(0.5),
        open_interest=lambda strike, kind: 5.0 if kind == "call" else 0.0,
    )
    summary = only_expiry(rows)
    assert summary["gamma_flip"] is None
    assert summary["missing"]["gamma_flip"] == "net dealer gamma is positive at every listed strike: no sign change"
    assert summary["put_wall"] is None
    assert summary["call_wall"] is not None
    assert summary["net_gex"] is not None
    assert summary["net_gex"] > 0


def test_it_leaves_out_of_gamma_a_contract_with_open_interest_but_no_mark_iv_and_counts_it() -> None:
    rows = priced_chain(strikes=grid(90_000, 110_000, 5_000), vol=quadratic_smile(0.5))
    rows = [{**row, "mark_iv": None} if row["strike"] == 110_000.0 and row["type"] == "call" else row for row in rows]
    analytics = expiry_analytics(rows=rows, expiry=rows[0]["expiry"], now_ms=NOW_MS)
    assert analytics is not None
    assert analytics["gex_left_out"] == 1
    assert analytics["by_strike"][-1]["call_gex"] is None
    assert analytics["by_strike"][-1]["net_gex"] == analytics["by_strike"][-1]["put_gex"]


# --- Term structure --------------------------------------------------------------------------------------------


def term_chain(vols_by_days: dict[float, float], settle: Settle = "USDT") -> list[ContractRow]:
    """One expiry per entry with a flat smile at its vol, the forward on a strike: each ATM IV is exact."""
    return [
        row
        for days, vol in vols_by_days.items()
        for row in priced_chain(
            strikes=grid(80_000, 120_000, 5_000), vol=quadratic_smile(vol), days=days, settle=settle
        )
    ]


def test_it_interpolates_constant_maturities_in_total_variance_and_never_extrapolates() -> None:
    vols = {20.0: 0.8, 45.0: 0.6, 120.0: 0.5}
    analytics = asset_analytics(rows=term_chain(vols), now_ms=NOW_MS)
    (structure,) = analytics["term_structures"]
    assert structure["settle"] == "USDT"
    assert [point["atm_iv"] for point in structure["expiries"]] == pytest.approx(list(vols.values()), abs=1e-12)
    by_days = {point["days"]: point for point in structure["constant_maturities"]}
    assert list(by_days) == list(CONSTANT_MATURITY_DAYS)

    def expected(days: int, near: float, far: float) -> float:
        variance_near, variance_far = vols[near] ** 2 * near, vols[far] ** 2 * far
        variance = variance_near + (variance_far - variance_near) * (days - near) / (far - near)
        return math.sqrt(variance / days)

    assert by_days[30]["atm_iv"] == pytest.approx(expected(30, 20.0, 45.0), abs=1e-12)
    assert by_days[60]["atm_iv"] == pytest.approx(expected(60, 45.0, 120.0), abs=1e-12)
    assert by_days[90]["atm_iv"] == pytest.approx(expected(90, 45.0, 120.0), abs=1e-12)
    assert by_days[7]["atm_iv"] is None
    assert by_days[7]["missing"]["atm_iv"].startswith("7 days is before the nearest expiry with an ATM IV (20.0 days)")
    assert by_days[180]["atm_iv"] is None
    assert "never extrapolated" in by_days[180]["missing"]["atm_iv"]


def test_it_keeps_a_term_structure_per_settle_coin() -> None:
    rows = term_chain({20.0: 0.8, 45.0: 0.6}) + term_chain({10.0: 0.9, 40.0: 0.4}, settle="USDC")
    structures = asset_analytics(rows=rows, now_ms=NOW_MS)["term_structures"]
    assert [structure["settle"] for structure in structures] == ["USDT", "USDC"]
    assert [point["atm_iv"] for point in structures[1]["expiries"]] == pytest.approx([0.9, 0.4], abs=1e-12)


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.floats(0.05, 3.0)), min_size=1, max_size=6, unique_by=lambda p: p[0]))
def test_it_interpolates_the_term_structure_between_its_bracketing_expiries(points: list[tuple[int, float]]) -> None:
    vols = {float(days): vol for days, vol in sorted(points)}
    structure = asset_analytics(rows=term_chain(vols), now_ms=NOW_MS)["term_structures"][0]
    listed = sorted(vols)
    for point in structure["constant_maturities"]:
        days = point["days"]
        before = [listed_days for listed_days in listed if listed_days <= days]
        after = [listed_days for listed_days in listed if listed_days >= days]
        if not before or not after:
            assert point["atm_iv"] is None
            assert "never extrapolated" in point["missing"]["atm_iv"]
            continue
        low, high = sorted((vols[max(before)], vols[min(after)]))
        assert point["atm_iv"] is not None
        assert low - 1e-12 <= point["atm_iv"] <= high + 1e-12


# --- Settle coins ----------------------------------------------------------------------------------------------


def test_it_keeps_usdt_and_usdc_contracts_of_one_strike_apart_and_adds_only_their_activity() -> None:
    strikes = grid(80_000, 120_000, 5_000)
    usdt = priced_chain(strikes=strikes, vol=quadratic_smile(0.5, -0.2, 0.3), settle="USDT", forward=100_400.0)
    usdc = priced_chain(
        strikes=strikes,
        vol=quadratic_smile(0.7, 0.1, 0.1),
        settle="USDC",
        forward=99_600.0,
        open_interest=lambda strike, kind: 1.0,
    )
    both = asset_analytics(rows=usdt + usdc, now_ms=NOW_MS)
    assert [(summary["expiry"], summary["settle"]) for summary in both["expiries"]] == [
        (usdt[0]["expiry"], "USDT"),
        (usdt[0]["expiry"], "USDC"),
    ]
    assert both["expiries"][0] == only_expiry(usdt)
    assert both["expiries"][1] == only_expiry(usdc, settle="USDC")
    (totals,) = both["totals"]
    assert totals["settles"] == ["USDT", "USDC"]
    assert totals["contracts"] == len(usdt) + len(usdc)
    assert totals["call_open_interest"] == 90.0 + 9.0
    assert totals["put_call_open_interest"] == 1.0


def test_it_picks_usdt_for_an_expiry_unless_asked_and_nothing_for_an_unknown_one() -> None:
    rows = priced_chain(strikes=grid(90_000, 110_000, 5_000), vol=quadratic_smile(0.5), settle="USDC")
    expiry = rows[0]["expiry"]
    analytics = expiry_analytics(rows=rows, expiry=expiry, now_ms=NOW_MS)
    assert analytics is not None
    assert analytics["settle"] == "USDC"
    assert expiry_analytics(rows=rows, expiry=expiry, now_ms=NOW_MS, settle="USDT") is None
    assert expiry_analytics(rows=rows, expiry="1JAN30", now_ms=NOW_MS) is None


def test_it_refuses_the_rows_of_several_assets() -> None:
    rows = priced_chain(strikes=[100_000.0], vol=quadratic_smile(0.5)) + priced_chain(
        strikes=[3_000.0], vol=quadratic_smile(0.5), forward=3_000.0, asset="ETH"
    )
    with pytest.raises(ValueError, match="BTC, ETH"):
        asset_analytics(rows=rows, now_ms=NOW_MS)


def test_it_answers_an_empty_chain_with_nothing_and_a_reason() -> None:
    analytics = asset_analytics(rows=[], now_ms=NOW_MS)
    assert analytics["expiries"] == analytics["totals"] == analytics["term_structures"] == []
    assert analytics["missing"] == {"asset": "no contracts"}


# --- Per contract ----------------------------------------------------------------------------------------------


def test_it_measures_a_contracts_moneyness_chance_in_the_money_and_spreads() -> None:
    years = 30 / 365
    call, put = (
        contract_row(strike=110_000.0, option_type=kind, vol=0.5, forward=FORWARD, days=30.0)
        for kind in ("call", "put")
    )
    measures = contract_measures(row=call, forward=FORWARD, years=years)
    assert measures["moneyness"] == pytest.approx(1.1)
    assert measures["log_moneyness"] == pytest.approx(math.log(1.1))
    d2 = (math.log(FORWARD / 110_000) - 0.5 * 0.25 * years) / (0.5 * math.sqrt(years))
    assert measures["itm_probability"] == pytest.approx(norm_cdf(d2), rel=1e-12)
    put_measures = contract_measures(row=put, forward=FORWARD, years=years)
    assert known(measures["itm_probability"]) + known(put_measures["itm_probability"]) == pytest.approx(1.0)
    assert measures["spread"] == pytest.approx(known(call["ask_price"]) - known(call["bid_price"]))
    assert measures["iv_spread"] == pytest.approx(0.02)  # a fraction, like the IVs: 2 vol points
    assert measures["missing"] == {}


def test_it_gives_a_contract_without_forward_or_quotes_reasons_instead_of_measures() -> None:
    row = contract_row(strike=110_000.0, option_type="call", vol=None, forward=None, days=30.0)
    measures = contract_measures(row=row, forward=None, years=None)
    assert {name for name, value in measures.items() if value is None} == set(measures["missing"])
    assert measures["missing"]["moneyness"] == "no forward for this expiry"
    assert measures["missing"]["spread"] == "no bid price"
    no_iv = contract_measures(row=row, forward=FORWARD, years=0.1)
    assert no_iv["missing"] == {"itm_probability": "no mark IV", "spread": "no bid price", "iv_spread": "no bid IV"}


# --- Any chain -------------------------------------------------------------------------------------------------


# Mostly the numbers a chain has, sometimes nothing, zero, a negative or any float at all (inf and NaN too:
# the module must not trust a row it did not check).
def numbers(low: float, high: float) -> st.SearchStrategy[float | None]:
    return st.one_of(
        st.floats(low, high),
        st.none(),
        st.just(0.0),
        st.floats(-high, 0.0, exclude_max=True),
        st.floats(),
    )


SETTLE_CHOICES: list[tuple[Settle, ...]] = [("USDT",), ("USDC",), ("USDT", "USDC")]
TYPE_CHOICES: list[tuple[OptionType, ...]] = [("call",), ("put",), ("call", "put")]


@st.composite
def odd_chains(draw: st.DrawFn) -> list[ContractRow]:
    forward = draw(st.floats(0.01, 1e7))
    # Mostly live, sometimes delivered, at delivery, or minutes (a few ms) from it.
    days = draw(st.one_of(st.floats(0.01, 800.0), st.floats(-3.0, 0.0), st.floats(1e-7, 1e-2)))
    # A grid about the forward, or strikes mostly near it, sometimes anywhere.
    any_strike = st.one_of(st.floats(-1.5, 1.5).map(lambda k: forward * math.exp(k)), st.floats(1e-3, 1e8))
    around = st.integers(2, 16).map(lambda count: [forward * math.exp(-1 + 2 * i / count) for i in range(count + 1)])
    strikes = draw(st.one_of(around, st.lists(any_strike, min_size=1, max_size=12, unique=True)))
    rows: list[ContractRow] = []
    for strike in strikes:
        for settle in draw(st.sampled_from(SETTLE_CHOICES)):
            for option_type in draw(st.sampled_from(TYPE_CHOICES)):
                vol = draw(st.floats(0.05, 3.0))
                priced = contract_row(
                    strike=strike, option_type=option_type, vol=vol, forward=forward, days=max(days, 1.0), settle=settle
                )
                row: dict[str, Any] = {**priced, "delivery_ms": NOW_MS + round(days * DAY_MS)}
                for name, low, high in (
                    ("mark_iv", 1e-3, 20.0),
                    ("underlying_price", forward * 0.9, forward * 1.1),
                    ("index_price", forward * 0.9, forward * 1.1),
                    ("open_interest", 0.0, 1e6),
                    ("volume_24h", 0.0, 1e5),
                    ("turnover_24h", 0.0, 1e11),
                    ("bid_price", 0.0, 1e7),
                    ("ask_price", 0.0, 1e7),
                    ("bid_iv", 0.0, 20.0),
                    ("ask_iv", 0.0, 20.0),
                ):
                    if draw(st.booleans()):
                        row[name] = draw(numbers(low, high))
                rows.append(cast(ContractRow, row))
    return rows


SUMMARY_IDENTITY = {"expiry", "settle", "delivery_ms", "ms_to_delivery", "contracts", "gex_left_out", "missing"}


def assert_every_null_has_a_reason(result: dict[str, Any], identity: set[str]) -> None:
    nulls = {name for name, value in result.items() if value is None and name not in identity}
    assert nulls == set(result["missing"]), result["missing"]
    assert all(isinstance(reason, str) and reason for reason in result["missing"].values())


@settings(deadline=None, max_examples=300)
@given(odd_chains())
def test_it_answers_any_chain_with_finite_numbers_or_nulls_that_have_a_reason(rows: list[ContractRow]) -> None:
    analytics = asset_analytics(rows=rows, now_ms=NOW_MS)
    # orjson writes NaN and Infinity as null without a word: check before serialising.
    assert all(math.isfinite(value) for value in floats_in(analytics))
    assert orjson.loads(orjson.dumps(analytics)) == analytics
    for summary in analytics["expiries"]:
        assert_every_null_has_a_reason(dict(summary), SUMMARY_IDENTITY)
        detail = expiry_analytics(rows=rows, expiry=summary["expiry"], now_ms=NOW_MS, settle=summary["settle"])
        assert detail is not None
        assert all(math.isfinite(value) for value in floats_in(detail))
        assert {key: value for key, value in detail.items() if key != "by_strike"} == summary
        for row in rows:
            if row["expiry"] == summary["expiry"] and row["settle"] == summary["settle"]:
                measures = contract_measures(row=row, forward=summary["forward"], years=summary["years_to_delivery"])
                assert all(math.isfinite(value) for value in floats_in(measures))
                assert_every_null_has_a_reason(dict(measures), {"symbol", "missing"})
    for totals in analytics["totals"]:
        assert_every_null_has_a_reason(dict(totals), {"expiry", "delivery_ms", "settles", "contracts", "missing"})
    for structure in analytics["term_structures"]:
        for point in [*structure["expiries"], *structure["constant_maturities"]]:
            assert_every_null_has_a_reason(dict(point), {"missing"})


def test_it_gives_the_same_answer_for_a_whole_chain_in_any_order() -> None:
    # A chain as Bybit lists one, with uneven positioning: sums over many contracts round differently in
    # another order unless the module puts the rows in one order first.
    rng = random.Random(20261201)
    rows: list[ContractRow] = []
    for days in (3.0, 10.0, 45.0):
        coins: list[tuple[Settle, float]] = [("USDT", FORWARD), ("USDC", FORWARD * 1.001)]
        for settle, forward in coins:
            rows += priced_chain(
                strikes=grid(70_000, 130_000, 2_500),
                vol=quadratic_smile(0.5, -0.2, 0.4),
                forward=forward,
                days=days,
                settle=settle,
                open_interest=lambda strike, kind: skewed_positioning(strike, kind) * rng.uniform(0.5, 1.5),
                volume=lambda strike, kind: rng.uniform(0, 8),
            )
    expected = asset_analytics(rows=rows, now_ms=NOW_MS)
    assert all(summary["gamma_flip"] is not None for summary in expected["expiries"])
    expiry = rows[0]["expiry"]
    expected_expiry = expiry_analytics(rows=rows, expiry=expiry, now_ms=NOW_MS)
    for _ in range(5):
        rng.shuffle(rows)
        assert asset_analytics(rows=rows, now_ms=NOW_MS) == expected
        assert expiry_analytics(rows=rows, expiry=expiry, now_ms=NOW_MS) == expected_expiry


@settings(deadline=None)
@given(odd_chains().flatmap(lambda rows: st.tuples(st.just(rows), st.permutations(rows))))
def test_it_gives_the_same_answer_whatever_the_order_of_the_rows(
    chains: tuple[list[ContractRow], list[ContractRow]],
) -> None:
    rows, shuffled = chains
    assert asset_analytics(rows=shuffled, now_ms=NOW_MS) == asset_analytics(rows=rows, now_ms=NOW_MS)
    for summary in asset_analytics(rows=rows, now_ms=NOW_MS)["expiries"]:
        expiry, settle = summary["expiry"], summary["settle"]
        assert expiry_analytics(rows=shuffled, expiry=expiry, now_ms=NOW_MS, settle=settle) == expiry_analytics(
            rows=rows, expiry=expiry, now_ms=NOW_MS, settle=settle
        )


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.05, 3.0), st.booleans()), min_size=1, max_size=12),
    st.one_of(st.floats(-0.3, 1.3), st.integers(0, 11)),
)
def test_it_interpolates_the_atm_iv_between_the_bracketing_strikes_and_never_beyond(
    smile: list[tuple[float, bool]], forward_at: float | int
) -> None:
    """``forward_at``: a share of the way from the lowest strike to the highest (outside 0 to 1 is outside the
    strikes), or the index of the strike the forward is on."""
    strikes = [80_000.0 + 4_000.0 * i for i in range(len(smile))]
    if isinstance(forward_at, int):
        forward = strikes[forward_at % len(strikes)]
    else:
        forward = strikes[0] + (strikes[-1] - strikes[0]) * forward_at
    vol_at = {strike: vol for strike, (vol, quoted) in zip(strikes, smile, strict=True) if quoted}
    rows = [
        contract_row(strike=strike, option_type=kind, vol=vol_at.get(strike), forward=forward, days=30.0)
        for strike in strikes
        for kind in ("call", "put")
    ]
    summary = only_expiry(rows)
    calls_above = [strike for strike in strikes if strike >= forward and strike in vol_at]
    puts_below = [strike for strike in strikes if strike < forward and strike in vol_at]
    if calls_above and calls_above[0] == forward:
        assert summary["atm_iv"] == vol_at[forward]
    elif not calls_above or not puts_below:
        assert summary["atm_iv"] is None
        assert summary["missing"]["atm_iv"]
    else:
        low, high = sorted((vol_at[max(puts_below)], vol_at[min(calls_above)]))
        assert summary["atm_iv"] is not None
        assert low - 1e-12 <= summary["atm_iv"] <= high + 1e-12


@settings(deadline=None)
@given(st.floats(0.2, 1.2), st.floats(-0.6, 0.6), st.floats(0.0, 1.0), st.floats(2.0, 200.0))
def test_it_interpolates_a_delta_between_the_two_contracts_that_bracket_it(
    atm: float, skew: float, curvature: float, days: float
) -> None:
    years = round(days * DAY_MS) / MS_PER_YEAR  # as the module reads it off delivery_ms
    smile = quadratic_smile(atm, skew, curvature)
    strikes = grid(40_000, 250_000, 5_000)
    rows = priced_chain(strikes=strikes, vol=lambda k: max(smile(k), 0.05), days=days)
    summary = only_expiry(rows)
    cases: list[tuple[OptionType, float, str]] = [("call", 0.25, "call_25d_iv"), ("put", -0.25, "put_25d_iv")]
    for option_type, target, name in cases:
        # Out of the money, from the money outwards, as the module walks them.
        out_of_the_money = [
            (row["strike"], known(row["mark_iv"]))
            for row in rows
            if row["type"] == option_type
            and (row["strike"] >= FORWARD if option_type == "call" else row["strike"] <= FORWARD)
        ]
        out_of_the_money.sort(reverse=option_type == "put")
        deltas = [
            (black76_delta(forward=FORWARD, strike=strike, years=years, vol=vol, option_type=option_type), vol)
            for strike, vol in out_of_the_money
        ]
        pairs = [(a, b) for a, b in pairwise(deltas) if (a[0] - target) * (b[0] - target) <= 0]
        value = as_dict(summary)[name]
        if not pairs:
            assert value is None
            assert "never extrapolated" in summary["missing"][name]
        else:
            (_, vol_a), (_, vol_b) = pairs[0]
            assert min(vol_a, vol_b) - 1e-12 <= value <= max(vol_a, vol_b) + 1e-12


@settings(deadline=None)
@given(odd_chains())
def test_it_has_a_strike_at_a_delta_exactly_when_it_has_the_iv_there(rows: list[ContractRow]) -> None:
    for summary in asset_analytics(rows=rows, now_ms=NOW_MS)["expiries"]:
        figures = as_dict(summary)
        listed = [
            row["strike"] for row in rows if (row["expiry"], row["settle"]) == (summary["expiry"], summary["settle"])
        ]
        for name in ("call_25d", "put_25d", "call_10d", "put_10d"):
            iv, strike = figures[f"{name}_iv"], figures[f"{name}_strike"]
            if iv is None:
                assert strike is None
                assert summary["missing"][f"{name}_strike"] == summary["missing"][f"{name}_iv"]
            else:
                assert strike is not None
                assert min(listed) <= strike <= max(listed)
