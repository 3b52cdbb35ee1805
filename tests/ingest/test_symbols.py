from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ingest.symbols import SymbolError, format_symbol, parse_expiry_code, parse_symbol

REAL_SYMBOLS = Path(__file__).resolve().parents[3] / "shared" / "data" / "bybit-option-symbols-2025-09-01.txt"


def test_it_parses_a_usdt_settled_symbol() -> None:
    contract = parse_symbol("BTC-26DEC25-65000-C-USDT")
    assert contract.base == "BTC"
    assert contract.expiry == datetime(2025, 12, 26, 8, 0, tzinfo=UTC)
    assert contract.strike == Decimal(65000)
    assert contract.option_type == "call"
    assert contract.settle == "USDT"
    assert contract.expiry_code == "26DEC25"


def test_it_parses_a_classic_usdc_symbol() -> None:
    contract = parse_symbol("ETH-28FEB25-2800-P")
    assert (contract.base, contract.settle, contract.option_type) == ("ETH", "USDC", "put")


def test_it_parses_an_unpadded_day_and_a_decimal_strike() -> None:
    contract = parse_symbol("XRP-2SEP26-0.4-P-USDT")
    assert contract.expiry.date() == date(2026, 9, 2)
    assert contract.strike == Decimal("0.4")
    assert contract.expiry_code == "2SEP26"


@pytest.mark.parametrize(
    "symbol",
    [
        "BTC-26DEC25-65000-X",
        "BTC-26XYZ25-65000-C",
        "BTC-31FEB25-65000-C",
        "BTC-26DEC25-0-C",
        "BTC-26DEC25-65000-C-USDC",
        "BTCUSDT",
        "btc-26DEC25-65000-C",
        "",
    ],
)
def test_it_rejects_what_is_not_an_option_symbol(symbol: str) -> None:
    with pytest.raises(SymbolError):
        parse_symbol(symbol)


def test_it_reads_expiry_codes_padded_or_not() -> None:
    assert parse_expiry_code("2sep25") == parse_expiry_code("02SEP25") == date(2025, 9, 2)
    with pytest.raises(SymbolError, match="not an expiry code"):
        parse_expiry_code("2025-09-02")


def test_it_round_trips_every_real_symbol_and_keeps_usdt_and_usdc_apart() -> None:
    symbols = REAL_SYMBOLS.read_text().split()
    assert len(symbols) == 1978
    contracts = [parse_symbol(symbol) for symbol in symbols]
    for contract in contracts:
        rebuilt = format_symbol(
            base=contract.base,
            expiry=contract.expiry.date(),
            strike=contract.strike,
            option_type=contract.option_type,
            settle=contract.settle,
        )
        assert rebuilt == contract.symbol
        assert contract.expiry.hour == 8
    assert len(set(contracts)) == 1978
    triples = [(c.base, c.expiry, c.strike, c.option_type) for c in contracts]
    assert len(triples) - len(set(triples)) == 218
    assert {c.base for c in contracts} == {"BTC", "ETH", "SOL"}
