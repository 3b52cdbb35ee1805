"""The simulated option market: instruments, the simulated clock, Black-76 prices and ticker payloads.

Nothing here does I/O; the server calls :meth:`Market.reprice` and :meth:`Market.roll` on a timer.

* Per base coin an index price follows a geometric random walk.
* Expiries follow Bybit's ladder (reference §5): the next dailies, weekly Fridays, monthly and quarterly
  last Fridays, all delivered at 08:00 UTC. BTC and ETH also list the classic USDC-settled form (no
  ``-USDT`` suffix) on their nearest quarterlies, as on 2025-09-01; the two forms are different contracts.
* Each expiry has a forward (``underlyingPrice``) and an IV smile; mark price and greeks are Black-76 at
  the mark IV (r = 0), bid and ask are priced at the mark IV minus/plus a spread in vol and rounded out
  to the tick, and a side is sometimes empty (``"0"``), as on the real feed.
* Open interest, volume and last price move with simulated trades.

Same seed and same start, same universe and same sequence of prices.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from ingest.simulator.config import SimulatorConfig
from ingest.simulator.frames import TickerFrameParts, ticker_frame_parts
from ingest.symbols import (
    OptionContract,
    SettleCoin,
    SymbolError,
    delivery_datetime,
    format_expiry_code,
    format_strike,
    format_symbol,
    parse_symbol,
)

YEAR_SECONDS = 365.0 * 86400.0
DAY_SECONDS = 86400.0
# Greeks explode as expiry nears; price the last minute as if one minute were left.
MIN_YEARS = 60.0 / YEAR_SECONDS
# Crypto futures trade at a premium to spot; 5 %/year gives forwards that differ visibly per expiry.
FORWARD_BASIS = 0.05
# Bybit fills predictedDeliveryPrice only in the last 30 minutes before delivery (reference §2).
PREDICTED_DELIVERY_WINDOW = 30 * 60.0
TRADES_PER_CONTRACT_SECOND = 0.002
DELIVERY_FEE_RATE = "0.00015"
_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True, slots=True)
class AssetProfile:
    """What differs between base coins: price level, volatility, tick, lot sizes, how many expiries."""

    base: str
    spot: float
    atm_iv: float
    tick_size: str
    min_qty: str
    qty_step: str
    max_qty: str
    max_price: str
    index_decimals: int
    dailies: int = 3
    weeklies: int = 3
    monthlies: int = 2
    quarterlies: int = 4
    # How many of the nearest quarterlies are also listed in the classic USDC-settled form.
    usdc_quarterlies: int = 0
    # Scales the number of strikes per expiry (tuned so the totals match the 2025-09-01 file).
    strike_density: float = 1.0
    skew: float = -0.03
    smile: float = 0.025

    @property
    def tick(self) -> float:
        return float(self.tick_size)

    @property
    def price_decimals(self) -> int:
        return _decimals(self.tick_size)

    @property
    def qty_decimals(self) -> int:
        return _decimals(self.qty_step)


# Sizes per base as on 2025-09-01: BTC ≈ 780 contracts, ETH ≈ 820, SOL ≈ 380 (USDT only, fewer expiries).
PROFILES: dict[str, AssetProfile] = {
    "BTC": AssetProfile(
        base="BTC",
        spot=100_000.0,
        atm_iv=0.45,
        tick_size="5",
        min_qty="0.01",
        qty_step="0.01",
        max_qty="500",
        max_price="1110000",
        index_decimals=2,
        usdc_quarterlies=2,
        strike_density=1.2,
    ),
    "ETH": AssetProfile(
        base="ETH",
        spot=4_000.0,
        atm_iv=0.6,
        tick_size="0.1",
        min_qty="0.1",
        qty_step="0.1",
        max_qty="10000",
        max_price="100000",
        index_decimals=2,
        usdc_quarterlies=2,
        strike_density=1.12,
    ),
    "SOL": AssetProfile(
        base="SOL",
        spot=200.0,
        atm_iv=0.7,
        tick_size="0.01",
        min_qty="1",
        qty_step="1",
        max_qty="100000",
        max_price="10000",
        index_decimals=3,
        monthlies=1,
        quarterlies=0,
        strike_density=1.15,
    ),
    "XRP": AssetProfile(
        base="XRP",
        spot=3.0,
        atm_iv=0.8,
        tick_size="0.0001",
        min_qty="1",
        qty_step="1",
        max_qty="1000000",
        max_price="100",
        index_decimals=4,
        monthlies=1,
        quarterlies=0,
    ),
}


def profile_for(base: str, *, spot: float | None = None) -> AssetProfile:
    """The profile of a known base coin, or a plausible one built around ``spot`` for another coin."""
    known = PROFILES.get(base)
    if known is not None:
        return known if spot is None else _replace_spot(known, spot)
    if spot is None:
        raise ValueError(f"no price profile for {base!r} (known: {', '.join(PROFILES)}); load it from a symbols file")
    tick = nice_step(spot * 1e-4)
    return AssetProfile(
        base=base,
        spot=spot,
        atm_iv=0.8,
        tick_size=format_strike(tick),
        min_qty="1",
        qty_step="1",
        max_qty="1000000",
        max_price=format_strike(nice_step(spot * 50)),
        index_decimals=max(2, _decimals(format_strike(tick))),
        monthlies=1,
        quarterlies=0,
    )


def _replace_spot(profile: AssetProfile, spot: float) -> AssetProfile:
    return replace(profile, spot=spot)


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


# --- time ---------------------------------------------------------------------------------------------


class SimClock:
    """Simulated UTC time: starts at ``start``, runs ``speed`` times faster than real time, jumps on request.

    Only listing, delivery and time to expiry read it. Frame ``ts`` stay real wall-clock time, so a
    consumer can measure exchange-to-screen latency against the simulator.
    """

    def __init__(self, *, start: datetime, speed: float = 1.0) -> None:
        self._anchor_sim = start.timestamp()
        self._anchor_real = time.monotonic()
        self.speed = speed

    def now_ts(self) -> float:
        return self._anchor_sim + (time.monotonic() - self._anchor_real) * self.speed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ts(), UTC)

    def jump_to(self, *, sim_ts: float) -> None:
        self._anchor_sim = sim_ts
        self._anchor_real = time.monotonic()

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.jump_to(sim_ts=self.now_ts())
        self.speed = speed


def next_delivery_after(moment: datetime) -> datetime:
    """The first 08:00 UTC strictly after ``moment``."""
    candidate = delivery_datetime(moment.astimezone(UTC).date())
    return candidate if candidate > moment else candidate + timedelta(days=1)


def listing_day(moment: datetime) -> date:
    """The day of the latest 08:00 UTC at or before ``moment``: expiries are counted from it."""
    day = moment.astimezone(UTC).date()
    return day if moment >= delivery_datetime(day) else day - timedelta(days=1)


def _last_friday(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 4) % 7)


def _months_after(day: date) -> Iterable[tuple[int, int]]:
    year, month = day.year, day.month
    while True:
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def expiry_ladder(*, day: date, profile: AssetProfile) -> dict[date, bool]:
    """Expiries listed during ``day`` (counted from its 08:00 UTC), each with whether USDC is also listed.

    On 2025-09-01 this gives BTC 2, 3, 4 SEP (dailies), 5, 12, 19 SEP (weeklies), 26 SEP and 31 OCT
    (monthlies), 26 DEC, 27 MAR and 26 JUN (quarterlies), USDC on 26 SEP and 26 DEC — the real list.
    """
    ladder: dict[date, bool] = {}
    for offset in range(1, profile.dailies + 1):
        ladder[day + timedelta(days=offset)] = False
    friday = day + timedelta(days=(4 - day.weekday()) % 7 or 7)
    for week in range(profile.weeklies):
        ladder.setdefault(friday + timedelta(weeks=week), False)
    months = (last for year, month in _months_after(day) if (last := _last_friday(year, month)) > day)
    for _ in range(profile.monthlies):
        ladder.setdefault(next(months), False)
    quarters = (
        last
        for year, month in _months_after(day)
        if month in (3, 6, 9, 12) and (last := _last_friday(year, month)) > day
    )
    for number in range(profile.quarterlies):
        expiry = next(quarters)
        ladder[expiry] = ladder.get(expiry, False) or number < profile.usdc_quarterlies
    return dict(sorted(ladder.items()))


# --- strikes ------------------------------------------------------------------------------------------


def nice_step(value: float) -> Decimal:
    """The 1-2-5 number nearest to ``value`` in log terms (500, 1000, 2000, 5000, 0.5, ...)."""
    if value <= 0:
        raise ValueError("a strike step must be positive")
    exponent = math.floor(math.log10(value))
    best = min(
        (Decimal(mantissa).scaleb(power) for power in (exponent - 1, exponent, exponent + 1) for mantissa in (1, 2, 5)),
        key=lambda step: abs(math.log(float(step) / value)),
    )
    return best.normalize() if best < 1 else best.quantize(Decimal(1))


def strike_ladder(*, spot: float, years: float, profile: AssetProfile, coarse_only: bool = False) -> list[Decimal]:
    """Strikes for one expiry: a fine grid within ±1.5 sd of spot and a coarse one out to ±3.5 sd.

    The spacing scales with spot * vol * sqrt(T) and is rounded to 1-2-5 numbers, which gives Bybit's
    500/1000/2000 for BTC dailies/weeklies and decimal strikes where the spacing falls below 1.
    ``coarse_only`` is for the second settle form, which Bybit lists with fewer strikes.
    """
    width = profile.atm_iv * math.sqrt(max(years, 1.0 / 365.0))
    fine = nice_step(spot * width / (6.0 * profile.strike_density))
    coarse = fine * max(2, round(float(nice_step(spot * width / (2.2 * profile.strike_density)) / fine)))
    grids = [(coarse, 3.5)] if coarse_only else [(fine, 1.5), (coarse, 3.5)]
    strikes: set[Decimal] = set()
    for step, sds in grids:
        low = spot * math.exp(-sds * width)
        high = min(spot * math.exp(sds * width), spot * 5)
        step_value = float(step)
        for multiple in range(max(1, math.ceil(low / step_value)), math.floor(high / step_value) + 1):
            strikes.add(step * multiple)
    return sorted(strikes)


# --- pricing ------------------------------------------------------------------------------------------


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT_2))


@dataclass(frozen=True, slots=True)
class Greeks:
    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def black76(*, forward: float, strike: float, years: float, iv: float, is_call: bool) -> Greeks:
    """Black-76 with r = 0, as Bybit quotes option premiums undiscounted in USD(T/C).

    vega is per 1 vol point (0.01) and theta per calendar day, matching the scale of Bybit's feed
    (the reference sample's vega 0.8135 is F·n(d1)·√T/100 for its inputs).
    """
    root = math.sqrt(years)
    deviation = max(iv * root, 1e-9)
    d1 = (math.log(forward / strike) + 0.5 * deviation * deviation) / deviation
    d2 = d1 - deviation
    n1 = _ncdf(d1)
    density = _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
    call = forward * n1 - strike * _ncdf(d2)
    price = call if is_call else call - forward + strike
    return Greeks(
        price=max(price, 0.0),
        delta=n1 if is_call else n1 - 1.0,
        gamma=density / (forward * deviation),
        vega=forward * density * root / 100.0,
        theta=-forward * density * iv / (2.0 * root) / 365.0,
    )


def black76_price(*, forward: float, strike: float, years: float, iv: float, is_call: bool) -> float:
    deviation = max(iv * math.sqrt(years), 1e-9)
    d1 = (math.log(forward / strike) + 0.5 * deviation * deviation) / deviation
    call = forward * _ncdf(d1) - strike * _ncdf(d1 - deviation)
    return max(call if is_call else call - forward + strike, 0.0)


def fmt(value: float, decimals: int) -> str:
    """A number as Bybit writes it: a string, no exponent, no trailing zeros, ``"0"`` for zero."""
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# --- contracts ----------------------------------------------------------------------------------------

# WebSocket ticker names → REST names (reference §4.2); the other fields are named the same.
REST_FIELD_NAMES = {
    "bidPrice": "bid1Price",
    "bidSize": "bid1Size",
    "bidIv": "bid1Iv",
    "askPrice": "ask1Price",
    "askSize": "ask1Size",
    "askIv": "ask1Iv",
    "markPriceIv": "markIv",
}
TICKER_FIELDS = (
    "symbol",
    "bidPrice",
    "bidSize",
    "bidIv",
    "askPrice",
    "askSize",
    "askIv",
    "lastPrice",
    "highPrice24h",
    "lowPrice24h",
    "markPrice",
    "indexPrice",
    "markPriceIv",
    "underlyingPrice",
    "openInterest",
    "turnover24h",
    "volume24h",
    "totalVolume",
    "totalTurnover",
    "delta",
    "gamma",
    "vega",
    "theta",
    "predictedDeliveryPrice",
    "change24h",
)


def contract_sort_key(contract: OptionContract) -> tuple[datetime, Decimal, str, str]:
    """instruments-info order: expiry, strike, calls before puts, USDC before USDT."""
    return (contract.expiry, contract.strike, contract.option_type, contract.settle)


@dataclass(slots=True, eq=False)
class Contract:
    """One listed option and its evolving market state; ``fields`` and ``frames`` are the latest encodings."""

    spec: OptionContract
    symbol_id: int
    launch_ms: int
    delivery_ts: float
    strike: float
    is_call: bool
    sort_key: tuple[datetime, Decimal, str, str]
    open_interest: float = 0.0
    volume24h: float = 0.0
    turnover24h: float = 0.0
    total_volume: float = 0.0
    total_turnover: float = 0.0
    last_price: float = 0.0
    high24h: float = 0.0
    low24h: float = 0.0
    open24h: float = 0.0
    bid_size: float = 0.0
    ask_size: float = 0.0
    bid_missing: bool = False
    ask_missing: bool = False
    mark_price: float = 0.0
    mark_iv: float = 0.0
    fields: dict[str, str] = field(default_factory=dict)
    frames: list[TickerFrameParts] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return self.spec.symbol

    @property
    def expiry(self) -> date:
        return self.spec.expiry.date()


@dataclass(slots=True)
class TradePrint:
    """One simulated trade, in ``publicTrade`` wire names."""

    base: str
    data: dict[str, Any]


@dataclass(slots=True)
class RollReport:
    """What a pass over the clock changed: contracts delivered and contracts listed."""

    sim_time: datetime
    delivered: list[str] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sim_time": self.sim_time.isoformat(), "delivered": self.delivered, "listed": self.listed}


@dataclass(slots=True, eq=False)
class AssetBook:
    """One base coin: its index, volatility level, random stream and live contracts."""

    profile: AssetProfile
    rng: random.Random
    index: float
    iv_level: float = 1.0
    contracts: dict[str, Contract] = field(default_factory=dict)
    ordered: list[Contract] = field(default_factory=list)
    delivered_expiries: set[date] = field(default_factory=set)
    last_reprice_real: float = field(default_factory=time.monotonic)

    def reorder(self) -> None:
        self.ordered = sorted(self.contracts.values(), key=lambda contract: contract.sort_key)

    def atm_iv(self, years: float) -> float:
        # Short expiries trade at a premium to the long ones, as in crypto most of the time.
        return self.profile.atm_iv * self.iv_level * (1.0 + 0.2 * math.exp(-years * 365.0 / 10.0))


def read_symbols_file(path: Path) -> list[OptionContract]:
    """Symbols, one per line (blank lines and ``#`` comments skipped); a bad line is an error naming it."""
    contracts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            contracts.append(parse_symbol(text))
        except SymbolError as error:
            raise ValueError(f"{path}:{number}: {error}") from None
    return contracts


def default_start(*, contracts: Sequence[OptionContract] = ()) -> datetime:
    """Now, or for a symbols file the noon (UTC) before its earliest delivery, so all of it is live."""
    if contracts:
        earliest = min(contract.expiry for contract in contracts)
        return earliest - timedelta(hours=20)
    return datetime.now(UTC).replace(microsecond=0)


class Market:
    """All simulated base coins. Not thread-safe: the server calls it from its event loop only."""

    def __init__(self, *, config: SimulatorConfig, clock: SimClock | None = None) -> None:
        self.config = config
        file_contracts = read_symbols_file(config.symbols_file) if config.symbols_file else []
        file_contracts = [contract for contract in file_contracts if contract.base in config.assets]
        self.clock = clock or SimClock(
            start=config.start or default_start(contracts=file_contracts), speed=config.speed
        )
        self.books: dict[str, AssetBook] = {}
        self.by_symbol: dict[str, Contract] = {}
        self._next_symbol_id = 1
        self.version = 0
        self.frames_ready = False
        now_ts = self.clock.now_ts()
        by_base: dict[str, list[OptionContract]] = {}
        for contract in file_contracts:
            by_base.setdefault(contract.base, []).append(contract)
        for base in config.assets:
            from_file = by_base.get(base, [])
            spot = _spot_from_strikes(from_file) if from_file else None
            profile = profile_for(base, spot=spot)
            book = AssetBook(profile=profile, rng=random.Random(f"{config.seed}:{base}"), index=profile.spot)
            self.books[base] = book
            launch_ms = int((now_ts - DAY_SECONDS) * 1000)
            for spec in sorted(from_file, key=contract_sort_key):
                if spec.expiry.timestamp() > now_ts:
                    self._add(book, spec, launch_ms=launch_ms)
        self.roll()
        self._encode_all()

    # --- universe -----------------------------------------------------------------------------------

    def _add(self, book: AssetBook, spec: OptionContract, *, launch_ms: int) -> Contract:
        contract = Contract(
            spec=spec,
            symbol_id=self._next_symbol_id,
            launch_ms=launch_ms,
            delivery_ts=spec.expiry.timestamp(),
            strike=float(spec.strike),
            is_call=spec.option_type == "call",
            sort_key=contract_sort_key(spec),
        )
        self._next_symbol_id += 1
        self._seed_state(book, contract)
        book.contracts[spec.symbol] = contract
        self.by_symbol[spec.symbol] = contract
        return contract

    def _seed_state(self, book: AssetBook, contract: Contract) -> None:
        rng = book.rng
        lots = 1.0 / float(book.profile.qty_step)
        contract.open_interest = round(rng.uniform(0, 300) * lots) / lots
        contract.bid_size = round(rng.uniform(0.1, 30) * lots) / lots or float(book.profile.qty_step)
        contract.ask_size = round(rng.uniform(0.1, 30) * lots) / lots or float(book.profile.qty_step)
        contract.total_volume = float(rng.randint(0, 5000))
        contract.total_turnover = contract.total_volume * book.index
        if rng.random() < 0.6:
            contract.volume24h = round(rng.uniform(0, 50) * lots) / lots
            contract.turnover24h = contract.volume24h * book.index
        contract.open24h = -1.0  # set from the first mark price

    def roll(self) -> RollReport:
        """Deliver every contract whose 08:00 UTC has passed and list the expiries the ladder now wants."""
        now_ts = self.clock.now_ts()
        now = datetime.fromtimestamp(now_ts, UTC)
        report = RollReport(sim_time=now)
        for base, book in self.books.items():
            for symbol, contract in list(book.contracts.items()):
                if contract.delivery_ts <= now_ts:
                    del book.contracts[symbol]
                    del self.by_symbol[symbol]
                    book.delivered_expiries.add(contract.expiry)
                    report.delivered.append(symbol)
            listed_expiries = {contract.expiry for contract in book.contracts.values()}
            launch_ms = int(delivery_datetime(listing_day(now)).timestamp() * 1000)
            ladder = expiry_ladder(day=listing_day(now), profile=book.profile) if self.config.list_ladder else {}
            for expiry, with_usdc in ladder.items():
                delivery_ts = delivery_datetime(expiry).timestamp()
                if expiry in listed_expiries or expiry in book.delivered_expiries or delivery_ts <= now_ts:
                    continue
                years = (delivery_ts - now_ts) / YEAR_SECONDS
                forms: list[tuple[SettleCoin, bool]] = [("USDT", False)]
                if with_usdc:
                    forms.append(("USDC", True))
                for settle, coarse_only in forms:
                    for strike in strike_ladder(
                        spot=book.index, years=years, profile=book.profile, coarse_only=coarse_only
                    ):
                        for option_type in ("call", "put"):
                            symbol = format_symbol(
                                base=base, expiry=expiry, strike=strike, option_type=option_type, settle=settle
                            )
                            contract = self._add(book, parse_symbol(symbol), launch_ms=launch_ms)
                            report.listed.append(contract.symbol)
            book.reorder()
        if report.delivered or report.listed:
            self.version += 1
            if self.frames_ready:
                self._encode_all(only=report.listed)
        return report

    def live_symbols(self, base: str) -> list[str]:
        book = self.books.get(base.upper())
        return [contract.symbol for contract in book.ordered] if book else []

    def contract(self, symbol: str) -> Contract | None:
        return self.by_symbol.get(symbol)

    def next_delivery(self) -> datetime:
        return next_delivery_after(self.clock.now())

    # --- pricing ------------------------------------------------------------------------------------

    def reprice(self, bases: Iterable[str] | None = None, *, elapsed: float | None = None) -> list[TradePrint]:
        """Move the market of ``bases`` (default all) on and re-encode their tickers; returns the trades made.

        The step is the real time since their last re-pricing, or ``elapsed`` seconds if given (which
        makes a run reproducible step for step).
        """
        trades: list[TradePrint] = []
        for base in bases if bases is not None else list(self.books):
            book = self.books[base]
            real_now = time.monotonic()
            step = max(real_now - book.last_reprice_real, 0.0) if elapsed is None else elapsed
            book.last_reprice_real = real_now
            # An hour of simulated time at most per step, so a clock jump does not throw the index away.
            self._walk(book, min(step * self.clock.speed, 3600.0))
            if self.config.publish_trades and not self.config.bench:
                trades += self._trade(book, step)
            self._encode_book(book)
        return trades

    def _walk(self, book: AssetBook, sim_dt: float) -> None:
        rng = book.rng
        years = sim_dt / YEAR_SECONDS
        shock = rng.gauss(0.0, 1.0)
        vol = book.profile.atm_iv
        book.index *= math.exp(vol * math.sqrt(years) * shock - 0.5 * vol * vol * years)
        # The vol level mean-reverts to 1 over about a simulated day.
        pull = min(sim_dt / DAY_SECONDS, 1.0)
        book.iv_level += (1.0 - book.iv_level) * pull + 0.3 * math.sqrt(sim_dt / DAY_SECONDS) * rng.gauss(0.0, 0.05)
        book.iv_level = min(max(book.iv_level, 0.5), 2.0)
        decay = math.exp(-sim_dt / DAY_SECONDS)
        for contract in book.ordered:
            contract.volume24h *= decay
            contract.turnover24h *= decay

    def _trade(self, book: AssetBook, elapsed: float) -> list[TradePrint]:
        rng = book.rng
        profile = book.profile
        chance = TRADES_PER_CONTRACT_SECOND * elapsed
        prints = []
        lots = 1.0 / float(profile.qty_step)
        for contract in book.ordered:
            if rng.random() >= chance or contract.mark_price <= 0:
                continue
            price = max(
                round(contract.mark_price * rng.uniform(0.97, 1.03) / profile.tick) * profile.tick, profile.tick
            )
            qty = max(round(rng.uniform(0, 5) * lots) / lots, float(profile.qty_step))
            side = "Buy" if rng.random() < 0.5 else "Sell"
            contract.last_price = price
            contract.high24h = max(contract.high24h, price)
            contract.low24h = min(contract.low24h, price) if contract.low24h > 0 else price
            contract.volume24h += qty
            contract.turnover24h += qty * book.index
            contract.total_volume += qty
            contract.total_turnover += qty * book.index
            contract.open_interest = max(contract.open_interest + (qty if rng.random() < 0.6 else -qty), 0.0)
            prints.append(
                TradePrint(
                    base=profile.base,
                    data={
                        "i": f"{rng.getrandbits(128):032x}",
                        "T": int(time.time() * 1000),
                        "p": fmt(price, profile.price_decimals),
                        "v": fmt(qty, profile.qty_decimals),
                        "S": side,
                        "s": contract.symbol,
                        "BT": False,
                        "mP": fmt(contract.mark_price, 8),
                        "iP": fmt(book.index, 8),
                        "mIv": fmt(contract.mark_iv, 4),
                        "iv": fmt(contract.mark_iv * rng.uniform(0.98, 1.02), 4),
                    },
                )
            )
        return prints

    def _encode_all(self, *, only: Sequence[str] | None = None) -> None:
        chosen = set(only) if only is not None else None
        for book in self.books.values():
            self._encode_book(book, [c for c in book.ordered if chosen is None or c.symbol in chosen])
        self.frames_ready = True

    def _encode_book(self, book: AssetBook, contracts: Sequence[Contract] | None = None) -> None:
        """Price and encode the tickers of ``contracts`` (default all of the book).

        In bench mode each contract gets ``bench_variants`` versions, a few basis points of index
        apart, so that successive pushes of one contract are not identical.
        """
        contracts = book.ordered if contracts is None else contracts
        if not contracts:
            return
        now_ts = self.clock.now_ts()
        variants = self.config.bench_variants if self.config.bench else 1
        index = book.index
        encoded: dict[str, list[TickerFrameParts]] = {contract.symbol: [] for contract in contracts}
        for variant in range(variants):
            book.index = index * (1.0 + 0.0004 * math.sin(variant)) if variants > 1 else index
            self._price_book(book, contracts, now_ts)
            for contract in contracts:
                encoded[contract.symbol].append(
                    ticker_frame_parts(symbol=contract.symbol, data=orjson.dumps(contract.fields))
                )
        book.index = index
        for contract in contracts:
            contract.frames = encoded[contract.symbol]

    def _price_book(self, book: AssetBook, contracts: Sequence[Contract], now_ts: float) -> None:
        profile = book.profile
        rng = book.rng
        tick = profile.tick
        price_dp = profile.price_decimals
        qty_dp = profile.qty_decimals
        index_dp = profile.index_decimals
        index_text = fmt(book.index, index_dp)
        lots = 1.0 / float(profile.qty_step)
        no_quote = self.config.no_quote_probability
        forwards: dict[float, tuple[float, float, str, float]] = {}
        for contract in contracts:
            expiry_state = forwards.get(contract.delivery_ts)
            if expiry_state is None:
                seconds_left = contract.delivery_ts - now_ts
                years = max(seconds_left / YEAR_SECONDS, MIN_YEARS)
                forward = book.index * math.exp(FORWARD_BASIS * years)
                predicted = index_text if 0 < seconds_left <= PREDICTED_DELIVERY_WINDOW else "0"
                expiry_state = (years, forward, predicted, book.atm_iv(years))
                forwards[contract.delivery_ts] = expiry_state
            years, forward, predicted, atm = expiry_state
            moneyness = math.log(contract.strike / forward) / (atm * math.sqrt(years))
            moneyness = min(max(moneyness, -6.0), 6.0)
            iv = min(max(atm * (1.0 + profile.skew * moneyness + profile.smile * moneyness * moneyness), 0.05), 5.0)
            greeks = black76(forward=forward, strike=contract.strike, years=years, iv=iv, is_call=contract.is_call)
            contract.mark_price = greeks.price
            contract.mark_iv = iv
            # Market makers quote a spread in vol, wider on the short expiries.
            spread_vol = 0.01 + 0.012 / math.sqrt(years * 365.0 + 1.0)
            # Each side stays empty or quoted for a while (a persistent coin with stationary chance no_quote).
            if rng.random() < 0.2:
                contract.bid_missing = rng.random() < no_quote
            if rng.random() < 0.2:
                contract.ask_missing = rng.random() < no_quote / 2
            if rng.random() < 0.3:
                contract.bid_size = max(round(rng.uniform(0.1, 30) * lots) / lots, 1 / lots)
                contract.ask_size = max(round(rng.uniform(0.1, 30) * lots) / lots, 1 / lots)
            bid_iv = max(iv - spread_vol, 0.01)
            bid = black76_price(
                forward=forward, strike=contract.strike, years=years, iv=bid_iv, is_call=contract.is_call
            )
            bid = math.floor(bid / tick + 1e-9) * tick
            ask_iv = iv + spread_vol
            ask = black76_price(
                forward=forward, strike=contract.strike, years=years, iv=ask_iv, is_call=contract.is_call
            )
            ask = max(math.ceil(ask / tick - 1e-9) * tick, tick)
            if contract.bid_missing or bid < tick:
                bid_fields = ("0", "0", "0")
            else:
                bid_fields = (fmt(bid, price_dp), fmt(contract.bid_size, qty_dp), fmt(bid_iv, 4))
            if contract.ask_missing:
                ask_fields = ("0", "0", "0")
            else:
                ask_fields = (fmt(ask, price_dp), fmt(contract.ask_size, qty_dp), fmt(ask_iv, 4))
            if contract.open24h < 0:
                contract.open24h = greeks.price * rng.uniform(0.7, 1.3)
                if rng.random() < 0.6 and greeks.price >= tick:
                    contract.last_price = max(round(greeks.price * rng.uniform(0.9, 1.1) / tick) * tick, tick)
                    contract.high24h = contract.last_price * rng.uniform(1.0, 1.3)
                    contract.low24h = contract.last_price * rng.uniform(0.7, 1.0)
            last = contract.last_price
            change = (last - contract.open24h) / contract.open24h if last > 0 and contract.open24h > 0 else 0.0
            contract.fields = {
                "symbol": contract.symbol,
                "bidPrice": bid_fields[0],
                "bidSize": bid_fields[1],
                "bidIv": bid_fields[2],
                "askPrice": ask_fields[0],
                "askSize": ask_fields[1],
                "askIv": ask_fields[2],
                "lastPrice": fmt(last, price_dp),
                "highPrice24h": fmt(contract.high24h, price_dp) if last > 0 else "0",
                "lowPrice24h": fmt(contract.low24h, price_dp) if last > 0 else "0",
                "markPrice": fmt(greeks.price, 8),
                "indexPrice": index_text,
                "markPriceIv": fmt(iv, 4),
                "underlyingPrice": fmt(forward, index_dp),
                "openInterest": fmt(contract.open_interest, qty_dp),
                "turnover24h": fmt(contract.turnover24h, 4),
                "volume24h": fmt(contract.volume24h, qty_dp),
                "totalVolume": fmt(contract.total_volume, 0),
                "totalTurnover": fmt(contract.total_turnover, 0),
                "delta": fmt(greeks.delta, 8),
                "gamma": fmt(greeks.gamma, 8),
                "vega": fmt(greeks.vega, 8),
                "theta": fmt(greeks.theta, 8),
                "predictedDeliveryPrice": predicted,
                "change24h": fmt(change, 8),
            }

    # --- REST rows ----------------------------------------------------------------------------------

    def instrument_row(self, contract: Contract) -> dict[str, Any]:
        """One instruments-info row (reference §4.1): numbers as strings except ``symbolId``."""
        spec = contract.spec
        profile = self.books[spec.base].profile
        letter = "C" if contract.is_call else "P"
        expiry_code = format_expiry_code(contract.expiry)
        strike_text = format_strike(spec.strike)
        usdt = spec.settle == "USDT"
        return {
            "symbol": spec.symbol,
            "status": "Trading",
            "baseCoin": spec.base,
            # USDT-settled rows quote in USDT (DOCS sample); classic rows quote in USD and settle in USDC.
            "quoteCoin": "USDT" if usdt else "USD",
            "settleCoin": "USDT" if usdt else "USDC",
            "optionsType": "Call" if contract.is_call else "Put",
            "launchTime": str(contract.launch_ms),
            "deliveryTime": str(int(contract.delivery_ts * 1000)),
            "deliveryFeeRate": DELIVERY_FEE_RATE,
            "priceFilter": {
                "minPrice": profile.tick_size,
                "maxPrice": profile.max_price,
                "tickSize": profile.tick_size,
            },
            "lotSizeFilter": {
                "maxOrderQty": profile.max_qty,
                "minOrderQty": profile.min_qty,
                "qtyStep": profile.qty_step,
            },
            # displayName of a classic USDC row is UNCONFIRMED; the symbol itself is the safe guess.
            "displayName": f"{spec.base}USDT-{expiry_code}-{strike_text}-{letter}" if usdt else spec.symbol,
            "symbolId": contract.symbol_id,
        }

    @staticmethod
    def rest_ticker(contract: Contract) -> dict[str, str]:
        """The REST tickers row: same values as the WebSocket push, REST field names."""
        return {REST_FIELD_NAMES.get(name, name): value for name, value in contract.fields.items()}


def _spot_from_strikes(contracts: Sequence[OptionContract]) -> float:
    """A file has no prices: take the median strike of its nearest expiry as the index to start from."""
    nearest = min(contract.expiry for contract in contracts)
    return float(statistics.median(contract.strike for contract in contracts if contract.expiry == nearest))
