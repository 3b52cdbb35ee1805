"""The simulated market on its own: instruments, expiry ladder, prices, delivery. No sockets here."""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from ingest.simulator.config import SimulatorConfig
from ingest.simulator.market import (
    PROFILES,
    TICKER_FIELDS,
    Market,
    SimClock,
    black76,
    expiry_ladder,
    next_delivery_after,
    read_symbols_file,
    strike_ladder,
)
from ingest.symbols import format_symbol, parse_symbol
from tests.ingest.conftest import REAL_SYMBOLS_FILE, SIMULATOR_START


def frozen_market(**changes: object) -> Market:
    """A market whose simulated clock (almost) stands still, so time to expiry is the same in each one."""
    config = SimulatorConfig(seed=7, start=SIMULATOR_START).with_changes(**changes)
    return Market(config=config, clock=SimClock(start=SIMULATOR_START, speed=1e-12))


def test_it_lists_the_same_expiries_as_bybit_on_2025_09_01() -> None:
    real: dict[str, dict[date, set[str]]] = defaultdict(lambda: defaultdict(set))
    for contract in read_symbols_file(REAL_SYMBOLS_FILE):
        real[contract.base][contract.expiry.date()].add(contract.settle)
    for base in ("BTC", "ETH", "SOL"):
        ladder = expiry_ladder(day=date(2025, 9, 1), profile=PROFILES[base])
        assert sorted(ladder) == sorted(real[base]), base
        assert {expiry for expiry, usdc in ladder.items() if usdc} == {
            expiry for expiry, settles in real[base].items() if "USDC" in settles
        }, base


def test_it_generates_a_universe_sized_and_priced_like_bybits() -> None:
    market = frozen_market()
    sizes = {base: len(book.ordered) for base, book in market.books.items()}
    for base, real_size in {"BTC": 778, "ETH": 822, "SOL": 378}.items():
        assert 0.75 * real_size <= sizes[base] <= 1.25 * real_size, sizes
    for base, spot in {"BTC": 100_000, "ETH": 4_000, "SOL": 200}.items():
        assert 0.9 * spot < market.books[base].index < 1.1 * spot
    settles = {base: {contract.spec.settle for contract in book.ordered} for base, book in market.books.items()}
    assert settles == {"BTC": {"USDT", "USDC"}, "ETH": {"USDT", "USDC"}, "SOL": {"USDT"}}
    for contract in market.by_symbol.values():
        assert parse_symbol(contract.symbol) == contract.spec
        assert not re.search(r"-0\d[A-Z]{3}\d\d-", contract.symbol), "Bybit does not pad the day"
        assert contract.spec.expiry.hour == 8
        assert contract.spec.expiry > SIMULATOR_START


def test_it_spaces_strikes_like_bybit_and_uses_decimals_when_needed() -> None:
    daily = strike_ladder(spot=100_000, years=1 / 365, profile=PROFILES["BTC"])
    steps = {b - a for a, b in itertools.pairwise(daily)}
    assert steps <= {500, 1000}
    assert daily[0] < 100_000 < daily[-1]
    xrp = strike_ladder(spot=3.0, years=3 / 365, profile=PROFILES["XRP"])
    assert any(strike != strike.to_integral_value() for strike in xrp)
    symbol = format_symbol(base="XRP", expiry=date(2026, 11, 27), strike=xrp[0], option_type="put", settle="USDT")
    assert re.fullmatch(r"XRP-27NOV26-\d+\.\d+-P-USDT", symbol)


def test_it_loads_a_symbols_file_with_both_settle_forms_kept_apart() -> None:
    market = Market(config=SimulatorConfig(symbols_file=REAL_SYMBOLS_FILE))
    assert len(market.by_symbol) == 1978
    triples = defaultdict(set)
    for contract in market.by_symbol.values():
        spec = contract.spec
        triples[(spec.base, spec.expiry, spec.strike, spec.option_type)].add(spec.settle)
    assert sum(1 for settles in triples.values() if settles == {"USDT", "USDC"}) == 218
    # The clock starts the noon before the file's first expiry, so every contract in it is live.
    assert market.clock.now() < datetime(2025, 9, 2, 8, tzinfo=UTC)


def test_without_the_ladder_a_symbols_file_is_the_whole_universe(tmp_path) -> None:
    symbols = ["BTC-27NOV26-90000-C-USDT", "BTC-27NOV26-90000-C", "BTC-25DEC26-100000-P-USDT"]
    path = tmp_path / "symbols.txt"
    path.write_text("\n".join(symbols))
    start = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert sorted(
        Market(config=SimulatorConfig(symbols_file=path, start=start, list_ladder=False)).by_symbol
    ) == sorted(symbols)
    assert len(Market(config=SimulatorConfig(symbols_file=path, start=start)).by_symbol) > 100


def test_it_prices_every_contract_consistently_with_black_76() -> None:
    market = frozen_market()
    pairs: dict[tuple[datetime, Decimal, str], dict[str, dict[str, str]]] = defaultdict(dict)
    for contract in market.by_symbol.values():
        fields = contract.fields
        assert tuple(fields) == TICKER_FIELDS
        assert all(isinstance(value, str) for value in fields.values())
        mark = float(fields["markPrice"])
        if fields["bidPrice"] != "0":
            assert float(fields["bidPrice"]) <= mark + 1e-9
            assert float(fields["bidIv"]) < float(fields["markPriceIv"])
        if fields["askPrice"] != "0":
            assert float(fields["askPrice"]) >= mark - 1e-9
            assert float(fields["askIv"]) > float(fields["markPriceIv"])
        spec = contract.spec
        pairs[(spec.expiry, spec.strike, spec.settle)][spec.option_type] = fields
    for (_expiry, strike, _settle), pair in pairs.items():
        call, put = pair["call"], pair["put"]
        forward = float(call["underlyingPrice"])
        # Put-call parity with r = 0: C - P = F - K.
        assert float(call["markPrice"]) - float(put["markPrice"]) == pytest.approx(forward - float(strike), abs=0.011)
        assert float(call["delta"]) - float(put["delta"]) == pytest.approx(1.0, abs=1e-6)


def test_its_greeks_have_bybits_scale() -> None:
    # The reference's DOCS sample: BTC-6JAN23-17500-C, 20.7 h before delivery, mark IV 0.4896.
    greeks = black76(forward=16815.1, strike=17500, years=20.7 / 24 / 365, iv=0.4896, is_call=True)
    assert greeks.delta == pytest.approx(0.047831, abs=0.002)
    assert greeks.vega == pytest.approx(0.8135, rel=0.05)
    assert greeks.price == pytest.approx(7.87, rel=0.1)
    assert greeks.theta < 0


def test_it_quotes_no_bid_or_ask_now_and_then() -> None:
    market = frozen_market(no_quote_probability=0.5)
    market.reprice()
    quotes = [contract.fields for contract in market.by_symbol.values()]
    assert any(fields["bidPrice"] == "0" and fields["bidSize"] == "0" for fields in quotes)
    assert any(fields["askPrice"] == "0" and fields["askIv"] == "0" for fields in quotes)


def test_it_is_deterministic_for_a_seed() -> None:
    first, second, other = frozen_market(), frozen_market(), frozen_market(seed=8)
    for market in (first, second, other):
        for _ in range(3):
            market.reprice(elapsed=1.0)
    assert list(first.by_symbol) == list(second.by_symbol)
    assert [c.fields for c in first.by_symbol.values()] == [c.fields for c in second.by_symbol.values()]
    assert [c.fields for c in first.by_symbol.values()] != [c.fields for c in other.by_symbol.values()]


def test_it_delivers_at_0800_utc_and_lists_new_expiries() -> None:
    market = frozen_market()
    delivery = next_delivery_after(market.clock.now())
    due = {symbol for symbol, contract in market.by_symbol.items() if contract.spec.expiry == delivery}
    assert due
    market.clock.jump_to(sim_ts=delivery.timestamp() + 1)
    report = market.roll()
    assert set(report.delivered) == due
    assert not due & set(market.by_symbol)
    assert report.listed
    assert {parse_symbol(symbol).expiry for symbol in report.listed}.isdisjoint(
        {parse_symbol(symbol).expiry for symbol in due}
    )
    assert all(symbol in market.by_symbol and market.by_symbol[symbol].frames for symbol in report.listed)
    assert all(contract.spec.expiry > delivery for contract in market.by_symbol.values())


def test_it_fills_the_predicted_delivery_price_only_in_the_last_half_hour() -> None:
    market = frozen_market()
    delivery = next_delivery_after(market.clock.now())
    due = [contract for contract in market.by_symbol.values() if contract.spec.expiry == delivery]
    assert all(contract.fields["predictedDeliveryPrice"] == "0" for contract in due)
    market.clock.jump_to(sim_ts=(delivery - timedelta(minutes=10)).timestamp())
    market.reprice()
    assert all(contract.fields["predictedDeliveryPrice"] == contract.fields["indexPrice"] for contract in due)
    assert all(math.isfinite(float(contract.fields["gamma"])) for contract in due)
