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
from itertools import chain, pairwise
from operator import itemgetter
from typing import Literal, TypedDict

import numpy as np

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
_INF = math.inf
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
    # Where the 25- and 10-delta IVs were read: the strike, interpolated as the IV was.
    call_25d_strike: float | None
    put_25d_strike: float | None
    rr_25d: float | None
    bf_25d: float | None
    call_10d_iv: float | None
    put_10d_iv: float | None
    call_10d_strike: float | None
    put_10d_strike: float | None
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


_ASSET = itemgetter("asset")
_SYMBOL = itemgetter("symbol")
_STRIKE = itemgetter("strike")
_EXPIRY_AND_SETTLE = itemgetter("expiry", "settle")
# _chain_order within one expiry and settle coin: the rest of it is the same for all its rows.
_ORDER_IN_EXPIRY = itemgetter("delivery_ms", "strike", "type", "symbol")
# (figure, row field, in words): call_<figure>, put_<figure> and put_call_<figure> in the results.
_ACTIVITY_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("open_interest", "open_interest", "open interest"),
    ("volume_24h", "volume_24h", "24 h volume"),
    # Bybit's turnover24h is notional (contracts x the index at each trade), not premium: docs/analytics.md.
    ("notional_24h", "turnover_24h", "24 h turnover"),
)


@dataclass
class _Side:
    """The calls or the puts of one expiry and settle coin, at each of its strikes: the contract's row and the
    figures the measures read, ``None`` where the strike has no such contract or the row no usable number
    (missing, not finite, or out of its range).

    Each number is checked once, here: checking them where each measure read them was a quarter of the
    module's time (docs/benchmarks.md, "Analytics").
    """

    rows: list[ContractRow | None]
    mark_iv: list[float | None]  # positive
    open_interest: list[float | None]  # non-negative, as the volume and turnover
    volume_24h: list[float | None]
    # Each activity figure (by its row field) of the contracts that report it, for the sums.
    reported: dict[str, list[float]]
    contracts: int

    @classmethod
    def at(cls, strikes: Sequence[float], contracts: dict[float, ContractRow]) -> _Side:
        rows = [contracts.get(strike) for strike in strikes]
        activity = {name: _non_negatives(rows, name) for _, name, _ in _ACTIVITY_FIELDS}
        return cls(
            rows=rows,
            mark_iv=_positives(rows, "mark_iv"),
            open_interest=activity["open_interest"],
            volume_24h=activity["volume_24h"],
            reported={name: [value for value in values if value is not None] for name, values in activity.items()},
            contracts=len(contracts),
        )


@dataclass
class _Expiry:
    """One expiry and settle coin: its strikes in order, its calls and its puts at each, and the forward and
    index its contracts' rows carry (positive, or ``None``)."""

    expiry: str
    settle: Settle
    delivery_ms: int
    strikes: list[float]
    calls: _Side
    puts: _Side
    underlying_price: list[float | None]
    index_price: list[float | None]


def _expiry_groups(rows: Iterable[ContractRow]) -> tuple[str | None, list[_Expiry]]:
    """The rows' asset and their (expiry, settle coin) groups in delivery order, USDT first; each row once.

    A symbol given twice keeps its latest row (by ``ts``, then ``received_ts``, then its values). A row whose
    strike is not a positive number cannot be placed on a strike grid and is left out. Every measure reads the
    contracts strike by strike, in order, and sums over them with ``math.fsum`` (exact whatever the order), so
    the results do not depend on the order of the rows.
    """
    rows = list(rows)
    assets = set(map(_ASSET, rows))
    if len(assets) > 1:
        raise ValueError(f"analytics are per asset; the rows are of {', '.join(sorted(assets))}")
    placed = [row for row in rows if _positive_number(row["strike"])]
    if len(set(map(_SYMBOL, placed))) < len(placed):
        placed = _latest(placed)
    by_expiry: dict[tuple[str, Settle], list[ContractRow]] = {}
    for key, row in zip(map(_EXPIRY_AND_SETTLE, placed), placed, strict=True):
        by_expiry.setdefault(key, []).append(row)
    groups = [_expiry_group(expiry, settle, of_expiry) for (expiry, settle), of_expiry in by_expiry.items()]
    groups.sort(key=lambda group: (group.delivery_ms, group.expiry, _SETTLE_ORDER.index(group.settle)))
    return (next(iter(assets)) if assets else None), groups


def _latest(rows: Iterable[ContractRow]) -> list[ContractRow]:
    """Each symbol's latest row (``_freshness``)."""
    latest: dict[str, ContractRow] = {}
    for row in rows:
        kept = latest.get(row["symbol"])
        if kept is None or _freshness(row) > _freshness(kept):
            latest[row["symbol"]] = row
    return list(latest.values())


def _expiry_group(expiry: str, settle: Settle, rows: list[ContractRow]) -> _Expiry:
    calls = {row["strike"]: row for row in rows if row["type"] == "call"}
    puts = {row["strike"]: row for row in rows if row["type"] != "call"}
    if len(calls) + len(puts) < len(rows):
        # Two symbols of one strike and type (no listing has them): the last in chain order is the contract,
        # whatever order the rows came in, and the other is left out as a repeated symbol is.
        in_order = sorted(rows, key=_ORDER_IN_EXPIRY)
        calls = {row["strike"]: row for row in in_order if row["type"] == "call"}
        puts = {row["strike"]: row for row in in_order if row["type"] != "call"}
    strikes = sorted(calls.keys() | puts.keys())
    contracts = [*calls.values(), *puts.values()]
    return _Expiry(
        expiry=expiry,
        settle=settle,
        delivery_ms=min(row["delivery_ms"] for row in rows),
        strikes=strikes,
        calls=_Side.at(strikes, calls),
        puts=_Side.at(strikes, puts),
        underlying_price=_positives(contracts, "underlying_price"),
        index_price=_positives(contracts, "index_price"),
    )


# The usual number, a float in range, passes inline below (NaN fails every comparison, inf the bound); anything
# else is for _positive or _non_negative to judge. A call per number was most of the cost of checking them.


def _positive_number(value: object) -> bool:
    return (type(value) is float and 0.0 < value < _INF) or _positive(value) is not None


def _positives(rows: Iterable[Mapping[str, object] | None], name: str) -> list[float | None]:
    """Each row's ``name`` if it is a positive number, else (or without a row) ``None``."""
    return [
        None if row is None else value if type(value := row[name]) is float and 0.0 < value < _INF else _positive(value)
        for row in rows
    ]


def _non_negatives(rows: Iterable[Mapping[str, object] | None], name: str) -> list[float | None]:
    return [
        None
        if row is None
        else value
        if type(value := row[name]) is float and 0.0 <= value < _INF
        else _non_negative(value)
        for row in rows
    ]


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
class _Pricing:
    """What Black-76 needs of an expiry besides a strike and a vol."""

    forward: float
    years: float
    sqrt_years: float


@dataclass(frozen=True)
class _AtDelta:
    """The IV at a delta, and the strike there: read off the same two contracts with the same weights."""

    iv: float
    strike: float


_WINGS: tuple[tuple[OptionType, float], ...] = (("call", 1.0), ("put", -1.0))


def _expiry_analytics(group: _Expiry, *, now_ms: int) -> tuple[ExpirySummary, list[StrikeLevel]]:
    missing: dict[str, str] = {}
    ms_to_delivery = group.delivery_ms - now_ms
    years: float | None = None
    if ms_to_delivery > 0:
        years = _record(missing, "years_to_delivery", ms_to_delivery / MS_PER_YEAR)
    else:
        _record(missing, "years_to_delivery", "delivered: the delivery time is not after now")
    forward = _record(missing, "forward", _median(group.underlying_price, what="underlying price"))
    index_price = _record(missing, "index_price", _median(group.index_price, what="index price"))
    # A measure that needs a forward and a time to delivery has this reason when either is missing.
    needs = _prerequisites(missing, "forward", "years_to_delivery")
    pricing = _Pricing(forward, years, math.sqrt(years)) if forward is not None and years is not None else None

    basis: Computed = needs or _prerequisites(missing, "index_price")
    if pricing is not None and index_price is not None:
        basis = (pricing.forward / index_price - 1.0) / pricing.years

    atm_strike: Computed = needs
    if forward is not None:
        atm_strike = _nearest_strike(group.strikes, forward)
    atm_iv = _record(missing, "atm_iv", _atm_iv(group, pricing) if pricing is not None else needs)
    at_delta: dict[str, _AtDelta | str] = {}
    for option_type, sign in _WINGS:
        targets = (0.25 * sign, 0.10 * sign)
        reads = _at_deltas(group, pricing, targets, option_type) if pricing is not None else [needs, needs]
        at_delta[f"{option_type}_25d"], at_delta[f"{option_type}_10d"] = reads
    skew: dict[str, float | None] = {}
    for label in ("25d", "10d"):
        for option_type, _ in _WINGS:
            name = f"{option_type}_{label}"
            read = at_delta[name]
            iv = skew[f"{name}_iv"] = _record(missing, f"{name}_iv", read.iv if isinstance(read, _AtDelta) else read)
            # Read with the IV: null exactly when the IV is, and for its reason.
            strike = read.strike if isinstance(read, _AtDelta) and iv is not None else missing[f"{name}_iv"]
            skew[f"{name}_strike"] = _record(missing, f"{name}_strike", strike)
        call, put = f"call_{label}_iv", f"put_{label}_iv"
        call_iv, put_iv = skew[call], skew[put]
        rr: Computed = _prerequisites(missing, call, put)
        bf: Computed = _prerequisites(missing, call, put, "atm_iv")
        if call_iv is not None and put_iv is not None:
            rr = call_iv - put_iv
            if atm_iv is not None:
                bf = (call_iv + put_iv) / 2.0 - atm_iv
        skew[f"rr_{label}"] = _record(missing, f"rr_{label}", rr)
        skew[f"bf_{label}"] = _record(missing, f"bf_{label}", bf)

    straddle = _record(missing, "straddle", _straddle(group, atm_strike) if pricing is not None else needs)
    straddle_of_forward: Computed = _prerequisites(missing, "straddle")
    if straddle is not None and forward is not None:
        straddle_of_forward = straddle / forward
    implied_move: Computed = _prerequisites(missing, "atm_iv")
    if pricing is not None and atm_iv is not None:
        implied_move = pricing.forward * atm_iv * pricing.sqrt_years
    implied_move_usd = _record(missing, "implied_move", implied_move)
    implied_move_of_forward: Computed = _prerequisites(missing, "implied_move")
    if implied_move_usd is not None and forward is not None:
        implied_move_of_forward = implied_move_usd / forward

    activity = _activity([group], missing)
    gammas = _gammas(group, pricing) if pricing is not None else None
    by_strike = _strike_levels(group, gammas)
    gex = (
        _gex_figures(group, by_strike, gammas, pricing)
        if gammas is not None and pricing is not None
        else _GexFigures(needs, needs, needs, needs)
    )

    summary: ExpirySummary = {
        "expiry": group.expiry,
        "settle": group.settle,
        "delivery_ms": group.delivery_ms,
        "ms_to_delivery": ms_to_delivery,
        "years_to_delivery": years,
        "contracts": group.calls.contracts + group.puts.contracts,
        "forward": forward,
        "index_price": index_price,
        "basis_annualised": _record(missing, "basis_annualised", basis),
        "atm_strike": _record(missing, "atm_strike", atm_strike),
        "atm_iv": atm_iv,
        "call_25d_iv": skew["call_25d_iv"],
        "put_25d_iv": skew["put_25d_iv"],
        "call_25d_strike": skew["call_25d_strike"],
        "put_25d_strike": skew["put_25d_strike"],
        "rr_25d": skew["rr_25d"],
        "bf_25d": skew["bf_25d"],
        "call_10d_iv": skew["call_10d_iv"],
        "put_10d_iv": skew["put_10d_iv"],
        "call_10d_strike": skew["call_10d_strike"],
        "put_10d_strike": skew["put_10d_strike"],
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
        "gex_left_out": gammas.left_out if gammas is not None else 0,
        "missing": missing,
    }
    return summary, by_strike


def _prerequisites(missing: dict[str, str], *names: str) -> str:
    """Why a measure built on ``names`` cannot be computed ("" when they are all there)."""
    for name in names:
        if name in missing:
            return f"no {name.replace('_', ' ')}: {missing[name]}"
    return ""


def _median(figures: Iterable[float | None], *, what: str) -> Computed:
    """The median over the rows that carry one: each row of an expiry carries the same forward and index, and
    the median keeps one stale or odd row from moving them."""
    values = [value for value in figures if value is not None]
    if not values:
        return f"no {what} in this expiry's rows"
    return statistics.median(values)


def _nearest_strike(strikes: Sequence[float], forward: float) -> Computed:
    """The listed strike nearest the forward, the lower on a tie (as chain.filters.atm_strike)."""
    return min(strikes, key=lambda strike: (abs(strike - forward), strike), default="no strikes")


def _atm_iv(group: _Expiry, pricing: _Pricing) -> Computed:
    """The IV at the forward: linear in total variance against log-moneyness between the nearest strikes on
    each side that have an out-of-the-money mark IV (calls at and above the forward, puts below it)."""
    forward, years, strikes = pricing.forward, pricing.years, group.strikes
    position = bisect.bisect_left(strikes, forward)
    above = _first_with_iv(strikes, group.calls, range(position, len(strikes)))
    if above is not None and above[0] == forward:
        return above[1]  # a strike at the forward exactly: its call's IV, nothing to interpolate
    below = _first_with_iv(strikes, group.puts, range(position - 1, -1, -1))
    if len(strikes) == 1:
        return f"one strike only ({_strike_text(strikes[0])}): the forward is not between two strikes"
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


def _first_with_iv(strikes: Sequence[float], side: _Side, positions: Iterable[int]) -> tuple[float, float] | None:
    for position in positions:
        vol = side.mark_iv[position]
        if vol is not None:
            return strikes[position], vol
    return None


def _at_deltas(
    group: _Expiry, pricing: _Pricing, targets: Sequence[float], option_type: OptionType
) -> list[_AtDelta | str]:
    """The IV at each delta of ``targets`` (0.25 for a call, -0.25 for a put), linear in delta between the two
    out-of-the-money contracts nearest the money whose Black-76 deltas bracket it, and the strike there with
    the same weights; never extrapolated. One walk of the wing serves every target.

    Out of the money are calls at and above the forward and puts at and below it: a strike exactly at the
    forward is on both sides, so neither wing loses its anchor there. Each delta is computed from the
    contract's own mark IV, forward and time, so that delta and IV are one model's (Bybit's ``delta`` comes
    from its own, unstated time and rounding).
    """
    forward, sqrt_years, strikes = pricing.forward, pricing.sqrt_years, group.strikes
    if option_type == "call":
        side, away_from_the_money = group.calls, range(bisect.bisect_left(strikes, forward), len(strikes))
    else:
        side, away_from_the_money = group.puts, range(bisect.bisect_right(strikes, forward) - 1, -1, -1)
    found: dict[float, _AtDelta] = {}
    previous: tuple[float, float, float] | None = None  # (delta, vol, strike)
    nearest: float | None = None
    for position in away_from_the_money:
        vol = side.mark_iv[position]
        if vol is None:
            continue
        strike = strikes[position]
        # black76_delta without its checks (the strike, vol, forward and time are positive and finite already),
        # but for the two it would still refuse: a total vol that underflows to 0, a ratio with no logarithm.
        total_vol = vol * sqrt_years
        if total_vol == 0:
            continue
        try:
            d1 = math.log(forward / strike) / total_vol + 0.5 * total_vol
        except ValueError:
            continue
        # norm_cdf(d1) for a call, -norm_cdf(-d1) for a put.
        delta = 0.5 * math.erfc(-d1 / _SQRT_2) if option_type == "call" else -0.5 * math.erfc(d1 / _SQRT_2)
        if not math.isfinite(delta):
            continue
        for target in targets:
            if target in found:
                continue
            if delta == target:
                found[target] = _AtDelta(vol, strike)
            elif previous is not None and (previous[0] - target) * (delta - target) < 0:
                share = (target - previous[0]) / (delta - previous[0])
                found[target] = _AtDelta(
                    previous[1] + (vol - previous[1]) * share, previous[2] + (strike - previous[2]) * share
                )
        if len(found) == len(targets):
            break
        if nearest is None:
            nearest = delta
        previous = (delta, vol, strike)
    return [found.get(target) or _not_at_delta(target, option_type, previous, nearest) for target in targets]


def _not_at_delta(
    target: float, option_type: OptionType, previous: tuple[float, float, float] | None, nearest: float | None
) -> str:
    label = f"{round(abs(target) * 100)}-delta {option_type}"
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
    position = bisect.bisect_left(group.strikes, atm_strike)
    total = 0.0
    for option_type, side in (("call", group.calls), ("put", group.puts)):
        where = f"the {option_type} at the ATM strike {_strike_text(atm_strike)}"
        row = side.rows[position]
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


def _activity(groups: Sequence[_Expiry], missing: dict[str, str]) -> Activity:
    """Calls' and puts' open interest, 24 h volume and notional, summed over the contracts that report one,
    and each put/call ratio (``None`` when the calls' figure is 0)."""
    figures: dict[str, float | None] = {}
    sides = {"call": [group.calls for group in groups], "put": [group.puts for group in groups]}
    for name, row_field, what in _ACTIVITY_FIELDS:
        for option_type, of_type in sides.items():
            reported = [side.reported[row_field] for side in of_type]
            total: Computed
            if not any(side.contracts for side in of_type):
                total = f"no {option_type} in this expiry"
            elif not any(reported):
                total = f"no {option_type} reports its {what}"
            else:
                total = _total(chain.from_iterable(reported))
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
        totals.append(
            {
                "expiry": expiry,
                "delivery_ms": min(group.delivery_ms for group in of_expiry),
                "settles": [group.settle for group in of_expiry],
                "contracts": sum(group.calls.contracts + group.puts.contracts for group in of_expiry),
                **_activity(of_expiry, missing),
                "missing": missing,
            }
        )
    return totals


def _max_pain(group: _Expiry) -> Computed:
    """The listed strike S with the least Σ_calls OI·max(0, S - K) + Σ_puts OI·max(0, K - S), the lowest on a
    tie: what option holders would get at delivery at S, in USD (a contract is on one coin)."""
    call_oi = [value if value is not None else 0.0 for value in group.calls.open_interest]
    put_oi = [value if value is not None else 0.0 for value in group.puts.open_interest]
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


# --- Gamma exposure --------------------------------------------------------------------------------------------


@dataclass
class _Gammas:
    """The contracts with open interest and a usable mark IV, as the gamma figures need them."""

    # Each strike's call and put exposure at the forward; None where the strike has no such contract with open
    # interest and a mark IV, or the exposure is not a finite number.
    call_gex: list[float | None]
    put_gex: list[float | None]
    priced: bool = False  # some contract is
    left_out: int = 0  # contracts with open interest but no mark IV
    # The gamma flip's terms, strike by strike, one per contract whose vol x sqrt(T) did not underflow (a call
    # and a put of one strike at one mark IV, as Bybit marks both off one smile, are one): its strike, that
    # total vol, and sign x OI / total vol (the factors of its exposure at a spot S that do not depend on S).
    strikes: list[float] = field(default_factory=list)
    total_vols: list[float] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def _gammas(group: _Expiry, pricing: _Pricing) -> _Gammas:
    """Each contract's gamma exposure in USD per 1 % move, gamma x OI x F^2 x 0.01, negative for a put (dealers
    long the calls, short the puts), and what the gamma flip needs of it."""
    forward, sqrt_years = pricing.forward, pricing.sqrt_years
    gammas = _Gammas(call_gex=[None] * len(group.strikes), put_gex=[None] * len(group.strikes))
    for position, strike in enumerate(group.strikes):
        for side, exposures, sign in ((group.calls, gammas.call_gex, 1.0), (group.puts, gammas.put_gex, -1.0)):
            open_interest = side.open_interest[position]
            if not open_interest:
                continue
            vol = side.mark_iv[position]
            if vol is None:
                gammas.left_out += 1
                continue
            gammas.priced = True
            total_vol = vol * sqrt_years
            # black76_gamma without its checks: they hold already (the strike, vol, forward and time are
            # positive and finite) but for a total vol that underflows to 0 and a ratio with no logarithm,
            # which raise here.
            try:
                d1 = math.log(forward / strike) / total_vol + 0.5 * total_vol
                gamma = math.exp(-0.5 * d1 * d1) / _SQRT_2PI / (forward * total_vol)
            except (ValueError, ZeroDivisionError):
                pass
            else:
                exposure = sign * gamma * open_interest * forward * forward * ONE_PERCENT_MOVE
                exposures[position] = exposure if math.isfinite(exposure) else None
            if not total_vol > 0:
                continue
            weight = sign * open_interest / total_vol
            if gammas.strikes and gammas.strikes[-1] == strike and gammas.total_vols[-1] == total_vol:
                gammas.weights[-1] += weight  # this strike's call at the same mark IV: one term
            else:
                gammas.strikes.append(strike)
                gammas.total_vols.append(total_vol)
                gammas.weights.append(weight)
    return gammas


def _strike_levels(group: _Expiry, gammas: _Gammas | None) -> list[StrikeLevel]:
    calls, puts = group.calls, group.puts
    levels: list[StrikeLevel] = []
    for position, strike in enumerate(group.strikes):
        call_gex = put_gex = None
        if gammas is not None and gammas.priced:
            call_gex = _contract_gex(calls, position, gammas.call_gex[position])
            put_gex = _contract_gex(puts, position, gammas.put_gex[position])
        sides = [value for value in (call_gex, put_gex) if value is not None]
        levels.append(
            {
                "strike": strike,
                "call_open_interest": calls.open_interest[position],
                "put_open_interest": puts.open_interest[position],
                "call_volume_24h": calls.volume_24h[position],
                "put_volume_24h": puts.volume_24h[position],
                "call_gex": call_gex,
                "put_gex": put_gex,
                "net_gex": _finite(math.fsum(sides)) if sides else None,
            }
        )
    return levels


def _contract_gex(side: _Side, position: int, gex: float | None) -> float | None:
    """A contract's GEX: computed when it has open interest, 0 when its open interest is 0, else unknown."""
    if side.rows[position] is None:
        return None
    if gex is not None:
        return gex
    return 0.0 if side.open_interest[position] == 0 else None


@dataclass(frozen=True)
class _GexFigures:
    net: Computed
    call_wall: Computed
    put_wall: Computed
    flip: Computed


def _gex_figures(group: _Expiry, by_strike: Sequence[StrikeLevel], gammas: _Gammas, pricing: _Pricing) -> _GexFigures:
    reported = (*group.calls.open_interest, *group.puts.open_interest)
    if all(open_interest is None for open_interest in reported):
        reason = "no contract reports its open interest"
        return _GexFigures(reason, reason, reason, reason)
    contributions = [level["net_gex"] for level in by_strike if level["net_gex"] is not None]
    # (size, strike) of each strike's call and put exposure; the largest wins, the lowest strike on a tie.
    calls = [(gex, -level["strike"]) for level in by_strike if (gex := level["call_gex"]) is not None and gex > 0]
    puts = [(-gex, -level["strike"]) for level in by_strike if (gex := level["put_gex"]) is not None and gex < 0]
    call_wall: Computed = -max(calls)[1] if calls else "no call open interest with a mark IV"
    put_wall: Computed = -max(puts)[1] if puts else "no put open interest with a mark IV"
    net: Computed = _total(contributions)
    return _GexFigures(net, call_wall, put_wall, _gamma_flip(group.strikes, gammas, pricing))


def _gamma_flip(strikes: Sequence[float], gammas: _Gammas, pricing: _Pricing) -> Computed:
    """The spot at which dealers' net gamma exposure changes sign, nearest the forward (the lower on a tie).

    Net GEX is recomputed at each listed strike S as a hypothetical forward, every contract keeping its own
    mark IV and time (sticky strike), and the crossing is interpolated linearly between neighbouring strikes.
    A strike where it comes out exactly 0 has no sign (every gamma underflowed there) and is skipped.
    """
    if not gammas.priced:
        return "no open interest with a mark IV"
    # gamma(S) x OI x S^2 x 0.01 = OI x n(d1) x S x 0.01 / (vol sqrt(T)): strikes x contracts terms, most of
    # this module's work, so one numpy matrix (a Python loop over them took five times as long).
    spots = np.array(strikes, dtype=float)
    total_vol = np.array(gammas.total_vols, dtype=float)
    with np.errstate(all="ignore"):  # IEEE arithmetic, as Python's floats: a NaN or inf net is left out below
        d1 = (np.log(spots)[:, np.newaxis] - np.log(np.array(gammas.strikes, dtype=float))) / total_vol
        d1 += 0.5 * total_vol
        nets = np.exp(-0.5 * d1 * d1) @ np.array(gammas.weights, dtype=float)
        nets *= spots * ONE_PERCENT_MOVE / _SQRT_2PI
    points = [(spot, net) for spot, net in zip(strikes, nets.tolist(), strict=True) if net != 0 and math.isfinite(net)]
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


def _total(values: Iterable[float]) -> Computed:
    # fsum is exact whatever the order; it raises instead of returning inf when the sum overflows.
    try:
        return math.fsum(values)
    except OverflowError:
        return "too large to add up"


def _strike_text(strike: float) -> str:
    return format_strike(Decimal(repr(strike)))
