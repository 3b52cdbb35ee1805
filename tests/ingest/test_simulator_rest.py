"""The simulator's REST side, through pybit's real ``HTTP`` client and plain sockets."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from ingest.simulator import RunningSimulator
from ingest.simulator.market import REST_FIELD_NAMES, TICKER_FIELDS

REST_TICKER_FIELDS = [REST_FIELD_NAMES.get(name, name) for name in TICKER_FIELDS]


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_it_pages_through_every_instrument_of_an_asset(
    simulator: RunningSimulator, pybit_http: Callable[[str], HTTP]
) -> None:
    session = pybit_http(simulator.rest_url)
    symbols: list[str] = []
    cursor = None
    pages = 0
    while True:
        answer = session.get_instruments_info(category="option", baseCoin="ETH", limit=100, cursor=cursor)
        assert answer["retCode"] == 0
        result = answer["result"]
        symbols += [row["symbol"] for row in result["list"]]
        pages += 1
        cursor = result["nextPageCursor"]
        if not cursor:
            break
        # pybit puts the cursor into the URL as it is, so it must already be URL-safe.
        assert re.fullmatch(r"[A-Za-z0-9%._~-]+", cursor)
    assert symbols == simulator.live_symbols("ETH")
    assert pages == -(-len(symbols) // 100)
    assert len(set(symbols)) == len(symbols)


def test_it_describes_instruments_as_bybit_does(simulator: RunningSimulator, pybit_http: Callable[[str], HTTP]) -> None:
    answer = pybit_http(simulator.rest_url).get_instruments_info(category="option", limit=1000)
    rows = answer["result"]["list"]
    assert [row["symbol"] for row in rows] == simulator.live_symbols("BTC"), "BTC is the default baseCoin"
    assert {row["settleCoin"] for row in rows} == {"USDT", "USDC"}
    for row in rows:
        assert row["status"] == "Trading"
        assert row["optionsType"] in ("Call", "Put")
        delivery = datetime.fromtimestamp(int(row["deliveryTime"]) / 1000, UTC)
        assert (delivery.hour, delivery.minute, delivery.second) == (8, 0, 0)
        assert all(
            isinstance(value, str)
            for key, value in row.items()
            if key not in ("priceFilter", "lotSizeFilter", "symbolId")
        )
        assert isinstance(row["symbolId"], int)
        assert set(row["priceFilter"]) == {"minPrice", "maxPrice", "tickSize"}
        assert set(row["lotSizeFilter"]) == {"maxOrderQty", "minOrderQty", "qtyStep"}
        if row["settleCoin"] == "USDT":
            assert row["symbol"].endswith("-USDT")
            assert row["displayName"].startswith("BTCUSDT-")


def test_it_filters_instruments_by_symbol_and_status(
    simulator: RunningSimulator, pybit_http: Callable[[str], HTTP]
) -> None:
    session = pybit_http(simulator.rest_url)
    symbol = simulator.live_symbols("SOL")[5]
    rows = session.get_instruments_info(category="option", symbol=symbol)["result"]["list"]
    assert [row["symbol"] for row in rows] == [symbol]
    assert session.get_instruments_info(category="option", baseCoin="SOL", status="Delivering")["result"]["list"] == []
    assert session.get_instruments_info(category="option", baseCoin="DOGE")["result"]["list"] == []


def test_it_serves_tickers_under_their_rest_field_names(
    simulator: RunningSimulator, pybit_http: Callable[[str], HTTP]
) -> None:
    session = pybit_http(simulator.rest_url)
    rows = session.get_tickers(category="option", baseCoin="ETH")["result"]["list"]
    assert [row["symbol"] for row in rows] == simulator.live_symbols("ETH")
    for row in rows:
        assert list(row) == REST_TICKER_FIELDS
        assert all(isinstance(value, str) for value in row.values())
    assert "bid1Price" in rows[0]
    assert "bidPrice" not in rows[0]
    assert "markIv" in rows[0]
    assert "markPriceIv" not in rows[0]

    expiry_code = rows[-1]["symbol"].split("-")[1]
    by_expiry = session.get_tickers(category="option", baseCoin="ETH", expDate=expiry_code)["result"]["list"]
    assert by_expiry
    assert {row["symbol"].split("-")[1] for row in by_expiry} == {expiry_code}
    one = session.get_tickers(category="option", symbol=rows[0]["symbol"])["result"]["list"]
    assert [row["symbol"] for row in one] == [rows[0]["symbol"]]


def test_it_tells_the_wall_clock_time(simulator: RunningSimulator, pybit_http: Callable[[str], HTTP]) -> None:
    answer = pybit_http(simulator.rest_url).get_server_time()
    assert abs(int(answer["result"]["timeSecond"]) - time.time()) < 5
    assert answer["result"]["timeNano"].startswith(answer["result"]["timeSecond"])


@pytest.mark.parametrize(
    "query",
    [
        "instruments-info?baseCoin=BTC",
        "instruments-info?category=linear",
        "instruments-info?category=option&limit=0",
        "instruments-info?category=option&limit=1001",
        "instruments-info?category=option&limit=many",
        "instruments-info?category=option&cursor=garbage",
        "instruments-info?category=option&status=Sleeping",
        "tickers?category=option",
        "tickers?category=spot&baseCoin=BTC",
        "tickers?category=option&symbol=BTC-1JAN20-1-C",
        "tickers?category=option&baseCoin=BTC&expDate=31FOO26",
    ],
)
def test_it_answers_bad_parameters_with_bybits_error_envelope(simulator: RunningSimulator, query: str) -> None:
    answer = get_json(f"{simulator.rest_url}/v5/market/{query}")
    assert answer["retCode"] != 0
    assert answer["retMsg"]
    assert set(answer) == {"retCode", "retMsg", "result", "retExtInfo", "time"}


def test_pybit_raises_on_an_error_envelope(simulator: RunningSimulator, pybit_http: Callable[[str], HTTP]) -> None:
    with pytest.raises(InvalidRequestError):
        pybit_http(simulator.rest_url).get_tickers(category="option")


def test_it_answers_http_403_over_the_request_rate(
    start_simulator: Callable[..., RunningSimulator], pybit_http: Callable[[str], HTTP]
) -> None:
    simulator = start_simulator(rest_rate_limit=5, rest_rate_window=60.0)
    session = pybit_http(simulator.rest_url)
    for _ in range(5):
        session.get_server_time()
    with pytest.raises(FailedRequestError) as raised:
        session.get_server_time()
    assert raised.value.status_code == 403
    assert simulator.state()["rest_rejected"] == 1


def test_it_slows_rest_answers_on_demand(simulator: RunningSimulator, pybit_http: Callable[[str], HTTP]) -> None:
    session = pybit_http(simulator.rest_url)
    simulator.set_rest_delay(seconds=0.5)
    started = time.monotonic()
    session.get_server_time()
    assert time.monotonic() - started >= 0.5
    simulator.set_rest_delay(seconds=0)
    started = time.monotonic()
    session.get_server_time()
    assert time.monotonic() - started < 0.4


def test_it_survives_garbage_and_keeps_serving(simulator: RunningSimulator) -> None:
    with socket.create_connection(("127.0.0.1", simulator.port), timeout=5) as raw:
        raw.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
        raw.recv(1024)
    for path, method in (("/v5/market/nothing", "GET"), ("/v5/market/time", "POST"), ("/v5/public/option", "GET")):
        request = urllib.request.Request(f"{simulator.rest_url}{path}", method=method)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=5)
        assert 400 <= raised.value.code < 500
    assert get_json(f"{simulator.rest_url}/v5/market/time")["retCode"] == 0
