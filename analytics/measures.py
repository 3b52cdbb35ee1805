"""What a desk reads off one asset's option chain: forward, ATM IV, skew, expected move, positioning and gamma.

Pure functions of a list of ``ContractRow`` (one asset) and the time ``now_ms``: no Django, no Redis, no I/O.
Every float in a result is finite or ``None``, and each ``None`` measure has its reason in the result's
``missing`` (field name to reason); a thin or odd chain gives ``None`` measures, never an exception. Results do
not depend on the order of the rows.

USDT- and USDC-settled contracts are different contracts on different strike grids, so every per-expiry measure
is per settle coin; only the activity totals of ``ExpiryTotals`` (open interest, volume, notional) add the two,
since a contract is on one unit of the coin on both. Prices are Black-76 with a zero rate, as Bybit quotes options
on the expiry's forward (``underlying_price``). Volatilities, and differences of them (risk reversal, butterfly,
IV spread), are fractions like Bybit's: ``0.4896`` is 48.96 %; other ratios are fractions too.

Formulas, conventions, units, and the sources they come from: docs/analytics.md.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Literal, TypedDict

from ingest.normalize import QUOTE_FIELDS, ContractRow
from ingest.symbols import format_strike

Settle = Literal["USDT", "USDC"]
OptionType = Literal["call", "put"]
# A measure as computed: its value, or the reason there is none.
Computed = float | str

# ACT/365, as chain.filters.years_to_expiry takes it (that one is rounded for display; this is not).
MS_PER_YEAR = 365 * 86_400_000
CONSTANT_MATURITY_DAYS = (7, 30, 60, 90, 180)
# Gamma exposure is quoted per 1 % move of the underlying (SqueezeMetrics' convention).
ONE_PERCENT_MOVE = 0.01
_SETTLE_ORDER: tuple[Settle, ...] = ("USDT", "USDC")
_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# Pains this close to the least (relative to the largest) tie: the prefix sums that make max pain O(n) round
# differently from a strike-by-strike sum, and a tie must not go to whichever rounding came out lower.
_MAX_PAIN_TIE = 1e-12


class Activity(TypedDict):
    """Calls' and puts' open interest and 24 h volume (contracts) and notional (USD), with put/call ratios."""

    call_open_interest: float | None
    put_open_interest: float | None
    put_call_open_interest: float | None
    call_volume_24h: float | None
    put_volume_24h: float | None
    put_call_volume_24h: float | None
    call_notional_24h: float | None
    put_notional_24h: float | None
    put_call_notional_24h: float | None


class ExpirySummary(Activity):
    """One expiry of one settle coin. ``*_of_forward`` and put/call ratios are fractions; money is USD."""

    expiry: str
    settle: Settle
    delivery_ms: int
    ms_to_delivery: int
    years_to_delivery: float | None
    contracts: int
    forward: float | None
    index_price: float | None
    basis_annualised: float | None
    atm_strike: float | None
    atm_iv: float | None
    call_25d_iv: float | None
    put_25d_iv: float | None
    rr_25d: float | None
    bf_25d: float | None
    call_10d_iv: float | None
    put_10d_iv: float | None
    rr_10d: float | None
    bf_10d: float | None
    straddle: float | None
    straddle_of_forward: float | None
    implied_move: float | None
    implied_move_of_forward: float | None
    max_pain: float | None
    net_gex: float | None
    call_wall: float | None
    put_wall: float | None
    gamma_flip: float | None
    # Contracts with open interest but no usable mark IV: left out of the gamma figures.
    gex_left_out: int
    missing: dict[str, str]


class StrikeLevel(TypedDict):
    """One strike of an expiry: open interest and 24 h volume in contracts, GEX in USD per 1 % move.

    ``None`` where the strike has no such contract or the contract does not report the figure; ``put_gex`` is
    negative (dealers short puts) and ``net_gex`` is the sum of what there is.
    """

    strike: float
    call_open_interest: float | None
    put_open_interest: float | None
    call_volume_24h: float | None
    put_volume_24h: float | None
    call_gex: float | None
    put_gex: float | None
    net_gex: float | None


class ExpiryAnalytics(ExpirySummary):
    """``ExpirySummary`` with the by-strike series, in strike order."""

    by_strike: list[StrikeLevel]


class ExpiryTotals(Activity):
    """One expiry's activity over both settle coins (the only figures that combine them)."""

    expiry: str
    delivery_ms: int
    settles: list[Settle]
    contracts: int
    missing: dict[str, str]


class TermPoint(TypedDict):
    """A listed expiry not yet delivered, on the ATM term structure."""

    expiry: str
    delivery_ms: int
    years_to_delivery: float
    atm_iv: float | None
    missing: dict[str, str]


class ConstantMaturity(TypedDict):
    """The ATM IV at a fixed time to delivery, interpolated between listed expiries (never extrapolated)."""

    days: int
    years: float
    atm_iv: float | None
    missing: dict[str, str]


class TermStructure(TypedDict):
    settle: Settle
    expiries: list[TermPoint]
    constant_maturities: list[ConstantMaturity]


class AssetAnalytics(TypedDict):
    """One asset's chain: each expiry and settle coin (delivery order, USDT first), term structures, totals."""

    asset: str | None
    now_ms: int
    expiries: list[ExpirySummary]
    term_structures: list[TermStructure]
    totals: list[ExpiryTotals]
    missing: dict[str, str]


class ContractMeasures(TypedDict):
    """Per-contract figures, to be merged into its row: ``iv_spread`` is a fraction like the IVs."""

    symbol: str
    moneyness: float | None
    log_moneyness: float | None
    itm_probability: float | None
    spread: float | None
    iv_spread: float | None
    missing: dict[str, str]


# --- Black-76, zero rate ---------------------------------------------------------------------------------------


def norm_cdf(x: float) -> float:
    """The standard normal distribution function N(x)."""
    # erfc rather than 1 + erf: 1 + erf(x) loses every digit of a far tail (N(-10) would come out 0 or noise),
    # and deep out-of-the-money deltas are such tails.
    return 0.5 * math.erfc(-x / _SQRT_2)


def _norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / _SQRT_2PI


def _d1(*, forward: float, strike: float, years: float, vol: float) -> tuple[float, float]:
    """d1 and the total volatility vol x sqrt(years); ``ValueError`` unless every input is a positive finite number."""
    for name, value in (("forward", forward), ("strike", strike), ("years", years), ("vol", vol)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"Black-76 needs a positive finite {name}, not {value!r}")
    total_vol = vol * math.sqrt(years)
    if total_vol == 0:
        raise ValueError(f"vol {vol!r} over {years!r} years is no volatility at all")
    return math.log(forward / strike) / total_vol + 0.5 * total_vol, total_vol


def black76_price(*, forward: float, strike: float, years: float, vol: float, option_type: OptionType) -> float:
    """The undiscounted Black-76 price of an option on ``forward`` (USD per contract of one coin)."""
    d1, total_vol = _d1(forward=forward, strike=strike, years=years, vol=vol)
    d2 = d1 - total_vol
    if option_type == "call":
        return forward * norm_cdf(d1) - strike * norm_cdf(d2)
    return strike * norm_cdf(-d2) - forward * norm_cdf(-d1)


def black76_delta(*, forward: float, strike: float, years: float, vol: float, option_type: OptionType) -> float:
    """The undiscounted forward delta: N(d1) for a call, N(d1) - 1 for a put."""
    d1, _ = _d1(forward=forward, strike=strike, years=years, vol=vol)
    # -N(-d1) is N(d1) - 1 without the cancellation.
    return norm_cdf(d1) if option_type == "call" else -norm_cdf(-d1)


def black76_gamma(*, forward: float, strike: float, years: float, vol: float) -> float:
    """d(delta)/dF, the same for a call and a put: contracts of delta per USD of the forward."""
    d1, total_vol = _d1(forward=forward, strike=strike, years=years, vol=vol)
    return _norm_pdf(d1) / (forward * total_vol)


# --- Entry points ----------------------------------------------------------------------------------------------


def asset_analytics(*, rows: Iterable[ContractRow], now_ms: int) -> AssetAnalytics:
    """Every expiry and settle coin of one asset's chain (without the by-strike series), its ATM term structure
    per settle coin and its activity totals per expiry.

    ``ValueError`` if the rows are of several assets: that is the caller's mistake, not an odd chain.
    """
    return asset_and_expiry_analytics(rows=rows, now_ms=now_ms)[0]


def asset_and_expiry_analytics(
    *, rows: Iterable[ContractRow], now_ms: int
) -> tuple[AssetAnalytics, list[ExpiryAnalytics]]:
    """``asset_analytics`` and, from the same computation, ``expiry_analytics`` of every expiry and settle coin
    (the feed publishes both: computing them apart would do each expiry twice)."""
    asset, groups = _expiry_groups(rows)
    missing: dict[str, str] = {}
    if asset is None:
        missing["asset"] = "no contracts"
    computed = [_expiry_analytics(group, now_ms=now_ms) for group in groups]
    summaries = [summary for summary, _ in computed]
    details: list[ExpiryAnalytics] = [{**summary, "by_strike": by_strike} for summary, by_strike in computed]
    return {
        "asset": asset,
        "now_ms": now_ms,
        "expiries": summaries,
        "term_structures": [
            _term_structure([summary for summary in summaries if summary["settle"] == settle], settle=settle)
            for settle in _SETTLE_ORDER
            if any(summary["settle"] == settle for summary in summaries)
        ],
        "totals": _expiry_totals(groups),
        "missing": missing,
    }, details


def expiry_analytics(
    *, rows: Iterable[ContractRow], expiry: str, now_ms: int, settle: Settle | None = None
) -> ExpiryAnalytics | None:
    """One expiry of one settle coin with its by-strike series; ``None`` if the rows have no such contract.

    Without ``settle``: USDT when the expiry has USDT-settled contracts, else USDC (as the API's chain table).
    """
    _, groups = _expiry_groups(row for row in rows if row["expiry"] == expiry)
    if settle is None:
        settles = {group.settle for group in groups}
        settle = "USDT" if "USDT" in settles or not settles else "USDC"
    for group in groups:
        if group.settle == settle:
            summary, by_strike = _expiry_analytics(group, now_ms=now_ms)
            return {**summary, "by_strike": by_strike}
    return None


def contract_measures(*, row: ContractRow, forward: float | None, years: float | None) -> ContractMeasures:
    """A contract's moneyness, chance of finishing in the money and spreads, given its expiry's forward and
    years to delivery (``ExpirySummary.forward`` and ``years_to_delivery``).

    The probability is risk-neutral (Black-76 from the mark IV, zero rate): N(d2) for a call, N(-d2) for a put.
    """
    missing: dict[str, str] = {}
    strike = _positive(row["strike"])
    forward = _positive(forward)
    years = _positive(years)
    moneyness: Computed = "no forward for this expiry"
    log_moneyness: Computed = "no forward for this expiry"
    itm: Computed = "no forward for this expiry"
    if strike is None:
        moneyness = log_moneyness = itm = "the strike is not a positive number"
    elif forward is not None:
        moneyness = strike / forward
        log_moneyness = math.log(moneyness) if moneyness > 0 else "the strike is too small against the forward"
        itm = _itm_probability(row, forward=forward, strike=strike, years=years)
    return {
        "symbol": row["symbol"],
        "moneyness": _record(missing, "moneyness", moneyness),
        "log_moneyness": _record(missing, "log_moneyness", log_moneyness),
        "itm_probability": _record(missing, "itm_probability", itm),
        "spread": _record(missing, "spread", _spread(row, "bid_price", "ask_price", what="price")),
        "iv_spread": _record(missing, "iv_spread", _spread(row, "bid_iv", "ask_iv", what="IV")),
        "missing": missing,
    }


# --- Grouping --------------------------------------------------------------------------------------------------


@dataclass
class _Expiry:
    """The contracts of one expiry and settle coin, in chain order, with the calls and puts by strike."""

    expiry: str
    settle: Settle
    delivery_ms: int
    rows: list[ContractRow] = field(default_factory=list)
    calls: dict[float, ContractRow] = field(default_factory=dict)
    puts: dict[float, ContractRow] = field(default_factory=dict)
    strikes: list[float] = field(default_factory=list)


def _expiry_groups(rows: Iterable[ContractRow]) -> tuple[str | None, list[_Expiry]]:
    """The rows' asset and their (expiry, settle coin) groups in delivery order, USDT first; each row once.

    Rows are put in one canonical order first (sums then do not depend on the caller's order), and a symbol
    given twice keeps its latest row (by ``ts``, then ``received_ts``, then its values). A row whose strike is
    not a positive number cannot be placed on a strike grid and is left out.
    """
    latest: dict[str, ContractRow] = {}
    assets: set[str] = set()
    for row in rows:
        assets.add(row["asset"])
        if _positive(row["strike"]) is None:
            continue
        kept = latest.get(row["symbol"])
        if kept is None or _freshness(row) > _freshness(kept):
            latest[row["symbol"]] = row
    if len(assets) > 1:
        raise ValueError(f"analytics are per asset; the rows are of {', '.join(sorted(assets))}")
    groups: dict[tuple[str, Settle], _Expiry] = {}
    for row in sorted(latest.values(), key=_chain_order):
        key = (row["expiry"], row["settle"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Expiry(row["expiry"], row["settle"], row["delivery_ms"])
        group.delivery_ms = min(group.delivery_ms, row["delivery_ms"])
        group.rows.append(row)
        (group.calls if row["type"] == "call" else group.puts)[row["strike"]] = row
    for group in groups.values():
        group.strikes = sorted({row["strike"] for row in group.rows})
    ordered = sorted(groups.values(), key=lambda g: (g.delivery_ms, g.expiry, _SETTLE_ORDER.index(g.settle)))
    return (next(iter(assets)) if assets else None), ordered


def _chain_order(row: ContractRow) -> tuple[int, str, int, float, str, str]:
    return (
        row["delivery_ms"],
        row["expiry"],
        _SETTLE_ORDER.index(row["settle"]),
        row["strike"],
        row["type"],
        row["symbol"],
    )


def _freshness(row: ContractRow) -> tuple[object, ...]:
    """Which of two rows of one symbol is kept: the later, and of two as late, the one with the larger values
    (any rule will do that does not depend on which came first)."""
    fields: Mapping[str, object] = row
    values = tuple((number is None, number or 0.0) for number in (_number(fields[name]) for name in QUOTE_FIELDS))
    return (row["ts"] or -1, row["received_ts"] or -1, values, _chain_order(row))


# --- One expiry ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gamma:
    """A contract with open interest, as its gamma exposure needs it."""

    strike: float
    open_interest: float
    vol: float
    sign: float  # +1 for a call, -1 for a put: dealers long calls, short puts


@dataclass(frozen=True)
class _Pricing:
    """What Black-76 needs of an expiry besides a strike and a vol."""

    forward: float
    years: float


def _expiry_analytics(group: _Expiry, *, now_ms: int) -> tuple[ExpirySummary, list[StrikeLevel]]:
    missing: dict[str, str] = {}
    ms_to_delivery = group.delivery_ms - now_ms
    years: float | None = None
    if ms_to_delivery > 0:
        years = _record(missing, "years_to_delivery", ms_to_delivery / MS_PER_YEAR)
    else:
        _record(missing, "years_to_delivery", "delivered: the delivery time is not after now")
    forward = _record(missing, "forward", _median(group.rows, "underlying_price", what="underlying price"))
    index_price = _record(missing, "index_price", _median(group.rows, "index_price", what="index price"))
    # A measure that needs a forward and a time to delivery has this reason when either is missing.
    needs = _prerequisites(missing, "forward", "years_to_delivery")
    pricing = _Pricing(forward, years) if forward is not None and years is not None else None

    basis: Computed = needs or _prerequisites(missing, "index_price")
    if pricing is not None and index_price is not None:
        basis = (pricing.forward / index_price - 1.0) / pricing.years

    atm_strike: Computed = needs
    if forward is not None:
        atm_strike = _nearest_strike(group.strikes, forward)
    atm_iv = _record(missing, "atm_iv", _atm_iv(group, pricing) if pricing is not None else needs)
    skew: dict[str, float | None] = {}
    for target, label in ((0.25, "25d"), (0.10, "10d")):
        call, put = f"call_{label}_iv", f"put_{label}_iv"
        call_iv = _record(missing, call, _delta_iv(group, pricing, target, "call") if pricing is not None else needs)
        put_iv = _record(missing, put, _delta_iv(group, pricing, -target, "put") if pricing is not None else needs)
        rr: Computed = _prerequisites(missing, call, put)
        bf: Computed = _prerequisites(missing, call, put, "atm_iv")
        if call_iv is not None and put_iv is not None:
            rr = call_iv - put_iv
            if atm_iv is not None:
                bf = (call_iv + put_iv) / 2.0 - atm_iv
        skew[call], skew[put] = call_iv, put_iv
        skew[f"rr_{label}"] = _record(missing, f"rr_{label}", rr)
        skew[f"bf_{label}"] = _record(missing, f"bf_{label}", bf)

    straddle = _record(missing, "straddle", _straddle(group, atm_strike) if pricing is not None else needs)
    straddle_of_forward: Computed = _prerequisites(missing, "straddle")
    if straddle is not None and forward is not None:
        straddle_of_forward = straddle / forward
    implied_move: Computed = _prerequisites(missing, "atm_iv")
    if pricing is not None and atm_iv is not None:
        implied_move = pricing.forward * atm_iv * math.sqrt(pricing.years)
    implied_move_usd = _record(missing, "implied_move", implied_move)
    implied_move_of_forward: Computed = _prerequisites(missing, "implied_move")
    if implied_move_usd is not None and forward is not None:
        implied_move_of_forward = implied_move_usd / forward

    activity = _activity(group.rows, missing)
    gammas, gex_left_out = _gammas(group)
    by_strike = _strike_levels(group, gammas, pricing)
    gex = (
        _gex_figures(group, by_strike, gammas, pricing)
        if pricing is not None
        else _GexFigures(needs, needs, needs, needs)
    )

    summary: ExpirySummary = {
        "expiry": group.expiry,
        "settle": group.settle,
        "delivery_ms": group.delivery_ms,
        "ms_to_delivery": ms_to_delivery,
        "years_to_delivery": years,
        "contracts": len(group.rows),
        "forward": forward,
        "index_price": index_price,
        "basis_annualised": _record(missing, "basis_annualised", basis),
        "atm_strike": _record(missing, "atm_strike", atm_strike),
        "atm_iv": atm_iv,
        "call_25d_iv": skew["call_25d_iv"],
        "put_25d_iv": skew["put_25d_iv"],
        "rr_25d": skew["rr_25d"],
        "bf_25d": skew["bf_25d"],
        "call_10d_iv": skew["call_10d_iv"],
        "put_10d_iv": skew["put_10d_iv"],
        "rr_10d": skew["rr_10d"],
        "bf_10d": skew["bf_10d"],
        "straddle": straddle,
        "straddle_of_forward": _record(missing, "straddle_of_forward", straddle_of_forward),
        "implied_move": implied_move_usd,
        "implied_move_of_forward": _record(missing, "implied_move_of_forward", implied_move_of_forward),
        **activity,
        "max_pain": _record(missing, "max_pain", _max_pain(group)),
        "net_gex": _record(missing, "net_gex", gex.net),
        "call_wall": _record(missing, "call_wall", gex.call_wall),
        "put_wall": _record(missing, "put_wall", gex.put_wall),
        "gamma_flip": _record(missing, "gamma_flip", gex.flip),
        "gex_left_out": gex_left_out if pricing is not None else 0,
        "missing": missing,
    }
    return summary, by_strike


def _prerequisites(missing: dict[str, str], *names: str) -> str:
    """Why a measure built on ``names`` cannot be computed ("" when they are all there)."""
    for name in names:
        if name in missing:
            return f"no {name.replace('_', ' ')}: {missing[name]}"
    return ""


def _median(rows: Sequence[ContractRow], name: Literal["underlying_price", "index_price"], *, what: str) -> Computed:
    """The median over the rows that carry one: each row of an expiry carries the same forward and index, and
    the median keeps one stale or odd row from moving them."""
    values = [value for value in (_positive(row[name]) for row in rows) if value is not None]
    if not values:
        return f"no {what} in this expiry's rows"
    return statistics.median(values)


def _nearest_strike(strikes: Sequence[float], forward: float) -> Computed:
    """The listed strike nearest the forward, the lower on a tie (as chain.filters.atm_strike)."""
    return min(strikes, key=lambda strike: (abs(strike - forward), strike), default="no strikes")


def _atm_iv(group: _Expiry, pricing: _Pricing) -> Computed:
    """The IV at the forward: linear in total variance against log-moneyness between the nearest strikes on
    each side that have an out-of-the-money mark IV (calls at and above the forward, puts below it)."""
    forward, years = pricing.forward, pricing.years
    position = bisect.bisect_left(group.strikes, forward)
    above = _first_with_iv(group.strikes[position:], group.calls)
    if above is not None and above[0] == forward:
        return above[1]  # a strike at the forward exactly: its call's IV, nothing to interpolate
    below = _first_with_iv(reversed(group.strikes[:position]), group.puts)
    if len(group.strikes) == 1:
        return f"one strike only ({_strike_text(group.strikes[0])}): the forward is not between two strikes"
    if above is None:
        return "no out-of-the-money quote above the forward (no call with a mark IV at or above it)"
    if below is None:
        return "no out-of-the-money quote below the forward (no put with a mark IV below it)"
    (strike_low, vol_low), (strike_high, vol_high) = below, above
    k_low, k_high = math.log(strike_low / forward), math.log(strike_high / forward)
    if not k_low < 0 < k_high:
        return "the strikes either side are too close to the forward to tell apart"
    weight = -k_low / (k_high - k_low)
    # Total variance w = vol^2 T is linear in k between the two strikes.
    variance_low, variance_high = vol_low * vol_low * years, vol_high * vol_high * years
    return math.sqrt((variance_low + (variance_high - variance_low) * weight) / years)


def _first_with_iv(strikes: Iterable[float], contracts: dict[float, ContractRow]) -> tuple[float, float] | None:
    for strike in strikes:
        row = contracts.get(strike)
        vol = _positive(row["mark_iv"]) if row is not None else None
        if vol is not None:
            return strike, vol
    return None


def _delta_iv(group: _Expiry, pricing: _Pricing, target: float, option_type: OptionType) -> Computed:
    """The IV at delta ``target`` (0.25 for a call, -0.25 for a put), linear in delta between the two
    out-of-the-money contracts nearest the money whose Black-76 deltas bracket it; never extrapolated.

    Out of the money are calls at and above the forward and puts at and below it: a strike exactly at the
    forward is on both sides, so neither wing loses its anchor there. Each delta is computed from the
    contract's own mark IV, forward and time, so that delta and IV are one model's (Bybit's ``delta`` comes
    from its own, unstated time and rounding).
    """
    forward, years = pricing.forward, pricing.years
    label = f"{round(abs(target) * 100)}-delta {option_type}"
    if option_type == "call":
        away_from_the_money: Iterable[float] = group.strikes[bisect.bisect_left(group.strikes, forward) :]
        contracts = group.calls
    else:
        away_from_the_money = reversed(group.strikes[: bisect.bisect_right(group.strikes, forward)])
        contracts = group.puts
    previous: tuple[float, float] | None = None  # (delta, vol)
    nearest: float | None = None
    for strike in away_from_the_money:
        row = contracts.get(strike)
        vol = _positive(row["mark_iv"]) if row is not None else None
        if vol is None:
            continue
        try:
            delta = black76_delta(forward=forward, strike=strike, years=years, vol=vol, option_type=option_type)
        except ValueError:
            continue
        if not math.isfinite(delta):
            continue
        if delta == target:
            return vol
        if previous is not None and (previous[0] - target) * (delta - target) < 0:
            share = (target - previous[0]) / (delta - previous[0])
            return previous[1] + (vol - previous[1]) * share
        if nearest is None:
            nearest = delta
        previous = (delta, vol)
    if previous is None:
        return f"no {label} in the chain: no out-of-the-money {option_type} with a mark IV"
    if abs(previous[0]) > abs(target):
        return (
            f"no {label} in the chain: the furthest out-of-the-money {option_type} has delta {previous[0]:.3f}"
            " (the chain does not reach it; never extrapolated)"
        )
    return (
        f"no {label} in the chain: the nearest out-of-the-money {option_type} already has delta {nearest:.3f}"
        " (never extrapolated)"
    )


def _straddle(group: _Expiry, atm_strike: Computed) -> Computed:
    """Call mid plus put mid at the strike nearest the forward; both books two-sided and not crossed."""
    if isinstance(atm_strike, str):
        return atm_strike
    total = 0.0
    for option_type, contracts in (("call", group.calls), ("put", group.puts)):
        where = f"the {option_type} at the ATM strike {_strike_text(atm_strike)}"
        row = contracts.get(atm_strike)
        if row is None:
            return f"no {option_type} at the ATM strike {_strike_text(atm_strike)}"
        bid, ask = _positive(row["bid_price"]), _positive(row["ask_price"])
        if bid is None or ask is None:
            return f"{where} has no {'bid' if bid is None else 'ask'}"
        if bid > ask:
            return f"{where} has a crossed book (bid above ask)"
        total += (bid + ask) / 2.0
    return total


# --- Activity --------------------------------------------------------------------------------------------------


_ACTIVITY_FIELDS: tuple[tuple[str, Literal["open_interest", "volume_24h", "turnover_24h"], str], ...] = (
    ("open_interest", "open_interest", "open interest"),
    ("volume_24h", "volume_24h", "24 h volume"),
    # Bybit's turnover24h is notional (contracts x the index at each trade), not premium: docs/analytics.md.
    ("notional_24h", "turnover_24h", "24 h turnover"),
)


def _activity(rows: Sequence[ContractRow], missing: dict[str, str]) -> Activity:
    """Calls' and puts' open interest, 24 h volume and notional, summed over the contracts that report one,
    and each put/call ratio (``None`` when the calls' figure is 0)."""
    figures: dict[str, float | None] = {}
    by_type = {option_type: [row for row in rows if row["type"] == option_type] for option_type in ("call", "put")}
    for name, row_field, what in _ACTIVITY_FIELDS:
        for option_type, of_type in by_type.items():
            values = [value for value in (_non_negative(row[row_field]) for row in of_type) if value is not None]
            total: Computed = _total(values)
            if not of_type:
                total = f"no {option_type} in this expiry"
            elif not values:
                total = f"no {option_type} reports its {what}"
            figures[f"{option_type}_{name}"] = _record(missing, f"{option_type}_{name}", total)
        calls, puts = figures[f"call_{name}"], figures[f"put_{name}"]
        ratio: Computed = _prerequisites(missing, f"call_{name}", f"put_{name}")
        if not ratio:
            ratio = f"the calls' {what} is 0"
            if puts is not None and calls:
                ratio = puts / calls
        figures[f"put_call_{name}"] = _record(missing, f"put_call_{name}", ratio)
    return {
        "call_open_interest": figures["call_open_interest"],
        "put_open_interest": figures["put_open_interest"],
        "put_call_open_interest": figures["put_call_open_interest"],
        "call_volume_24h": figures["call_volume_24h"],
        "put_volume_24h": figures["put_volume_24h"],
        "put_call_volume_24h": figures["put_call_volume_24h"],
        "call_notional_24h": figures["call_notional_24h"],
        "put_notional_24h": figures["put_notional_24h"],
        "put_call_notional_24h": figures["put_call_notional_24h"],
    }


def _expiry_totals(groups: Sequence[_Expiry]) -> list[ExpiryTotals]:
    """Activity per expiry over both settle coins: a contract is on one coin whichever coin settles it, so
    contracts add up; notional adds USDT and USD as equal (docs/analytics.md)."""
    by_expiry: dict[str, list[_Expiry]] = {}
    for group in groups:  # in delivery order already
        by_expiry.setdefault(group.expiry, []).append(group)
    totals: list[ExpiryTotals] = []
    for expiry, of_expiry in by_expiry.items():
        missing: dict[str, str] = {}
        rows = [row for group in of_expiry for row in group.rows]
        totals.append(
            {
                "expiry": expiry,
                "delivery_ms": min(group.delivery_ms for group in of_expiry),
                "settles": [group.settle for group in of_expiry],
                "contracts": len(rows),
                **_activity(rows, missing),
                "missing": missing,
            }
        )
    return totals


def _max_pain(group: _Expiry) -> Computed:
    """The listed strike S with the least Σ_calls OI·max(0, S - K) + Σ_puts OI·max(0, K - S), the lowest on a
    tie: what option holders would get at delivery at S, in USD (a contract is on one coin)."""
    call_oi = [_oi(group.calls.get(strike)) for strike in group.strikes]
    put_oi = [_oi(group.puts.get(strike)) for strike in group.strikes]
    if not any(call_oi) and not any(put_oi):
        return "no open interest in this expiry"
    # Prefix sums: at strike j the calls below pay S·ΣOI - Σ(OI·K), the puts above Σ(OI·K) - S·ΣOI. O(n).
    count = len(group.strikes)
    call_pain = [0.0] * count
    oi_below = oi_strike_below = 0.0
    for j, strike in enumerate(group.strikes):
        call_pain[j] = strike * oi_below - oi_strike_below
        oi_below += call_oi[j]
        oi_strike_below += call_oi[j] * strike
    pains = [0.0] * count
    oi_above = oi_strike_above = 0.0
    for j in range(count - 1, -1, -1):
        strike = group.strikes[j]
        pains[j] = call_pain[j] + oi_strike_above - strike * oi_above
        oi_above += put_oi[j]
        oi_strike_above += put_oi[j] * strike
    if not all(math.isfinite(pain) for pain in pains):
        return "open interest too large to add up"
    least = min(pains)
    tie = _MAX_PAIN_TIE * max(abs(pain) for pain in pains)
    return next(strike for strike, pain in zip(group.strikes, pains, strict=True) if pain - least <= tie)


def _oi(row: ContractRow | None) -> float:
    value = _non_negative(row["open_interest"]) if row is not None else None
    return value if value is not None else 0.0


# --- Gamma exposure --------------------------------------------------------------------------------------------


def _gammas(group: _Expiry) -> tuple[list[_Gamma], int]:
    """The contracts with open interest and a usable mark IV, and how many with open interest have none."""
    gammas: list[_Gamma] = []
    left_out = 0
    for row in group.rows:
        open_interest = _non_negative(row["open_interest"])
        if not open_interest:
            continue
        vol = _positive(row["mark_iv"])
        if vol is None:
            left_out += 1
            continue
        gammas.append(_Gamma(row["strike"], open_interest, vol, 1.0 if row["type"] == "call" else -1.0))
    return gammas, left_out


def _gex(gamma: _Gamma, pricing: _Pricing) -> float | None:
    """Dealers' gamma exposure of one contract in USD per 1 % move: gamma x OI x F^2 x 0.01, negative for a put."""
    forward = pricing.forward
    try:
        value = black76_gamma(forward=forward, strike=gamma.strike, years=pricing.years, vol=gamma.vol)
    except (ValueError, ZeroDivisionError):
        return None
    exposure = gamma.sign * value * gamma.open_interest * forward * forward * ONE_PERCENT_MOVE
    return exposure if math.isfinite(exposure) else None


def _strike_levels(group: _Expiry, gammas: Sequence[_Gamma], pricing: _Pricing | None) -> list[StrikeLevel]:
    gex_by_contract: dict[tuple[float, float], float | None] = {}
    if pricing is not None:
        for gamma in gammas:
            gex_by_contract[(gamma.strike, gamma.sign)] = _gex(gamma, pricing)
    levels: list[StrikeLevel] = []
    for strike in group.strikes:
        call, put = group.calls.get(strike), group.puts.get(strike)
        call_gex = _contract_gex(call, gex_by_contract.get((strike, 1.0)), priced=bool(gex_by_contract))
        put_gex = _contract_gex(put, gex_by_contract.get((strike, -1.0)), priced=bool(gex_by_contract))
        sides = [value for value in (call_gex, put_gex) if value is not None]
        levels.append(
            {
                "strike": strike,
                "call_open_interest": _non_negative(call["open_interest"]) if call is not None else None,
                "put_open_interest": _non_negative(put["open_interest"]) if put is not None else None,
                "call_volume_24h": _non_negative(call["volume_24h"]) if call is not None else None,
                "put_volume_24h": _non_negative(put["volume_24h"]) if put is not None else None,
                "call_gex": call_gex,
                "put_gex": put_gex,
                "net_gex": _finite(math.fsum(sides)) if sides else None,
            }
        )
    return levels


def _contract_gex(row: ContractRow | None, gex: float | None, *, priced: bool) -> float | None:
    """A contract's GEX: computed when it has open interest, 0 when its open interest is 0, else unknown."""
    if row is None or not priced:
        return None
    if gex is not None:
        return gex
    return 0.0 if _non_negative(row["open_interest"]) == 0 else None


@dataclass(frozen=True)
class _GexFigures:
    net: Computed
    call_wall: Computed
    put_wall: Computed
    flip: Computed


def _gex_figures(
    group: _Expiry, by_strike: Sequence[StrikeLevel], gammas: Sequence[_Gamma], pricing: _Pricing
) -> _GexFigures:
    if not any(_non_negative(row["open_interest"]) is not None for row in group.rows):
        reason = "no contract reports its open interest"
        return _GexFigures(reason, reason, reason, reason)
    contributions = [level["net_gex"] for level in by_strike if level["net_gex"] is not None]
    # (size, strike) of each strike's call and put exposure; the largest wins, the lowest strike on a tie.
    calls = [(gex, -level["strike"]) for level in by_strike if (gex := level["call_gex"]) is not None and gex > 0]
    puts = [(-gex, -level["strike"]) for level in by_strike if (gex := level["put_gex"]) is not None and gex < 0]
    call_wall: Computed = -max(calls)[1] if calls else "no call open interest with a mark IV"
    put_wall: Computed = -max(puts)[1] if puts else "no put open interest with a mark IV"
    net: Computed = _total(contributions)
    return _GexFigures(net, call_wall, put_wall, _gamma_flip(gammas, group.strikes, pricing))


def _gamma_flip(gammas: Sequence[_Gamma], strikes: Sequence[float], pricing: _Pricing) -> Computed:
    """The spot at which dealers' net gamma exposure changes sign, nearest the forward (the lower on a tie).

    Net GEX is recomputed at each listed strike S as a hypothetical forward, every contract keeping its own
    mark IV and time (sticky strike), and the crossing is interpolated linearly between neighbouring strikes.
    A strike where it comes out exactly 0 has no sign (every gamma underflowed there) and is skipped.
    """
    if not gammas:
        return "no open interest with a mark IV"
    sqrt_years = math.sqrt(pricing.years)
    # gamma(S) x OI x S^2 x 0.01 = OI x n(d1) x S x 0.01 / (vol sqrt(T)): the factors common to every contract
    # are taken out of the loop, which runs strikes x contracts times and is most of this module's time.
    # A call and a put of one strike at one mark IV (Bybit marks both off one smile) are one term.
    weights: dict[tuple[float, float], float] = {}
    for gamma in gammas:
        total_vol = gamma.vol * sqrt_years
        if total_vol > 0:
            key = (math.log(gamma.strike), total_vol)
            weights[key] = weights.get(key, 0.0) + gamma.sign * gamma.open_interest / total_vol
    terms = [(weight, log_strike, total_vol) for (log_strike, total_vol), weight in weights.items()]
    exp = math.exp
    points: list[tuple[float, float]] = []
    for spot in strikes:
        log_spot = math.log(spot)
        net = 0.0
        for weight, log_strike, total_vol in terms:
            d1 = (log_spot - log_strike) / total_vol + 0.5 * total_vol
            net += weight * exp(-0.5 * d1 * d1)
        net *= spot * ONE_PERCENT_MOVE / _SQRT_2PI
        if net != 0 and math.isfinite(net):
            points.append((spot, net))
    crossings = [
        low + (high - low) * net_low / (net_low - net_high)
        for (low, net_low), (high, net_high) in pairwise(points)
        if (net_low > 0) != (net_high > 0)
    ]
    if not crossings:
        if not points:
            return "net dealer gamma is 0 at every listed strike"
        sign = "positive" if points[0][1] > 0 else "negative"
        return f"net dealer gamma is {sign} at every listed strike: no sign change"
    return min(crossings, key=lambda spot: (abs(spot - pricing.forward), spot))


# --- Term structure --------------------------------------------------------------------------------------------


def _term_structure(summaries: Sequence[ExpirySummary], *, settle: Settle) -> TermStructure:
    """Listed expiries' ATM IVs, and the constant maturities interpolated linearly in total variance
    (vol^2 x T) against T between the nearest listed expiries on each side that have an ATM IV."""
    points: list[TermPoint] = []
    for summary in summaries:
        years = summary["years_to_delivery"]
        if years is None:
            continue  # delivered: not on the curve
        missing = {"atm_iv": summary["missing"]["atm_iv"]} if summary["atm_iv"] is None else {}
        points.append(
            {
                "expiry": summary["expiry"],
                "delivery_ms": summary["delivery_ms"],
                "years_to_delivery": years,
                "atm_iv": summary["atm_iv"],
                "missing": missing,
            }
        )
    quoted = [(point["years_to_delivery"], point["atm_iv"]) for point in points if point["atm_iv"] is not None]
    constant: list[ConstantMaturity] = []
    for days in CONSTANT_MATURITY_DAYS:
        missing = {}
        years = days / 365
        constant.append(
            {
                "days": days,
                "years": years,
                "atm_iv": _record(missing, "atm_iv", _constant_maturity_iv(quoted, days=days, years=years)),
                "missing": missing,
            }
        )
    return {"settle": settle, "expiries": points, "constant_maturities": constant}


def _constant_maturity_iv(quoted: Sequence[tuple[float, float]], *, days: int, years: float) -> Computed:
    if not quoted:
        return "no expiry with an ATM IV"
    before = [(t, vol) for t, vol in quoted if t <= years]
    after = [(t, vol) for t, vol in quoted if t >= years]
    if not before:
        nearest = quoted[0][0] * 365
        return f"{days} days is before the nearest expiry with an ATM IV ({nearest:.1f} days); never extrapolated"
    if not after:
        furthest = quoted[-1][0] * 365
        return f"{days} days is after the furthest expiry with an ATM IV ({furthest:.1f} days); never extrapolated"
    (t_low, vol_low), (t_high, vol_high) = max(before), min(after)
    if t_high == t_low:
        return vol_low
    variance_low, variance_high = vol_low * vol_low * t_low, vol_high * vol_high * t_high
    variance = variance_low + (variance_high - variance_low) * (years - t_low) / (t_high - t_low)
    return math.sqrt(variance / years)


# --- Per contract ----------------------------------------------------------------------------------------------


def _itm_probability(row: ContractRow, *, forward: float, strike: float, years: float | None) -> Computed:
    if years is None:
        return "no time to delivery (delivered, or no expiry figures)"
    vol = _positive(row["mark_iv"])
    if vol is None:
        return "no mark IV"
    try:
        d1, total_vol = _d1(forward=forward, strike=strike, years=years, vol=vol)
    except ValueError as error:
        return str(error)
    d2 = d1 - total_vol
    return norm_cdf(d2) if row["type"] == "call" else norm_cdf(-d2)


def _spread(
    row: ContractRow,
    bid_field: Literal["bid_price", "bid_iv"],
    ask_field: Literal["ask_price", "ask_iv"],
    *,
    what: str,
) -> Computed:
    """Ask minus bid; negative for a crossed book, which is left to show."""
    bid, ask = _number(row[bid_field]), _number(row[ask_field])
    if bid is None or ask is None:
        return f"no {'bid' if bid is None else 'ask'} {what}"
    return ask - bid


# --- Numbers ---------------------------------------------------------------------------------------------------


def _record(missing: dict[str, str], name: str, computed: Computed | None) -> float | None:
    """The value of a measure, or ``None`` with its reason put in ``missing``."""
    if isinstance(computed, str):
        missing[name] = computed
        return None
    if computed is None or not math.isfinite(computed):
        missing[name] = "not a finite number: the inputs are out of range"
        return None
    return float(computed)


def _number(value: object) -> float | None:
    """``value`` as a finite float, else ``None`` (rows come from JSON: an int is a number, a bool is not)."""
    if type(value) is float:  # nearly always: a quick way past the checks below
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _positive(value: object) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _non_negative(value: object) -> float | None:
    number = _number(value)
    return number if number is not None and number >= 0 else None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _total(values: Sequence[float]) -> Computed:
    # fsum is exact whatever the order; it raises instead of returning inf when the sum overflows.
    try:
        return math.fsum(values)
    except OverflowError:
        return "too large to add up"


def _strike_text(strike: float) -> str:
    return format_strike(Decimal(repr(strike)))
