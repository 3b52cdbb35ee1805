"""Instrument discovery through pybit's HTTP client against the simulator."""

from pathlib import Path

import pytest

from ingest.bybit import DiscoveryError, fetch_option_contracts
from ingest.simulator import RunningSimulator
from tests.ingest.conftest import REAL_SYMBOLS_FILE, wide_btc_symbols_file


def test_it_reads_every_page_of_instruments(start_simulator, tmp_path: Path) -> None:
    simulator: RunningSimulator = start_simulator(assets=("BTC",), symbols_file=wide_btc_symbols_file(tmp_path))
    contracts = fetch_option_contracts(asset="BTC", rest_url=simulator.rest_url)
    listed = simulator.live_symbols("BTC")
    assert len(listed) > 1000  # more than one page of 1,000
    assert sorted(contract.symbol for contract in contracts) == sorted(listed)
    assert {contract.settle for contract in contracts} == {"USDT", "USDC"}


def test_it_asks_for_the_asset_it_is_given(start_simulator) -> None:
    simulator: RunningSimulator = start_simulator(assets=("BTC", "SOL"))
    contracts = fetch_option_contracts(asset="SOL", rest_url=simulator.rest_url)
    assert contracts
    assert {contract.base for contract in contracts} == {"SOL"}
    assert len(contracts) == len(simulator.live_symbols("SOL"))


def test_it_reads_the_real_symbol_file_served_by_the_simulator(start_simulator) -> None:
    simulator: RunningSimulator = start_simulator(assets=("ETH",), symbols_file=REAL_SYMBOLS_FILE)
    contracts = fetch_option_contracts(asset="ETH", rest_url=simulator.rest_url)
    assert len(contracts) == len(simulator.live_symbols("ETH")) > 0


def test_it_says_clearly_when_the_exchange_cannot_be_reached() -> None:
    with pytest.raises(DiscoveryError, match="instruments-info for BTC failed"):
        fetch_option_contracts(asset="BTC", rest_url="http://127.0.0.1:9", timeout=2)
