import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.normalize import QUOTE_FIELDS, REST_NAMES, WS_NAMES, BadTicker, apply_ticker, static_row
from ingest.symbols import parse_symbol

# Bybit's documented option ticker (reference §2), verbatim.
DOCS_SAMPLE = {
    "symbol": "BTC-6JAN23-17500-C",
    "bidPrice": "0",
    "bidSize": "0",
    "bidIv": "0",
    "askPrice": "10",
    "askSize": "5.1",
    "askIv": "0.514",
    "lastPrice": "10",
    "highPrice24h": "25",
    "lowPrice24h": "5",
    "markPrice": "7.86976724",
    "indexPrice": "16823.73",
    "markPriceIv": "0.4896",
    "underlyingPrice": "16815.1",
    "openInterest": "49.85",
    "turnover24h": "446802.8473",
    "volume24h": "26.55",
    "totalVolume": "86",
    "totalTurnover": "1437431",
    "delta": "0.047831",
    "gamma": "0.00021453",
    "vega": "0.81351067",
    "theta": "-19.9115368",
    "predictedDeliveryPrice": "0",
    "change24h": "-0.33333334",
}


@pytest.fixture
def row():
    return static_row(parse_symbol("BTC-6JAN23-17500-C"))


def test_it_reads_every_field_of_bybits_sample(row) -> None:
    applied = apply_ticker(row, DOCS_SAMPLE, ts=1672917511074, received_ts=1672917511080)
    assert applied["ask_price"] == 10.0
    assert applied["mark_iv"] == 0.4896
    assert applied["theta"] == -19.9115368
    assert applied["index_price"] == 16823.73
    assert applied["ts"] == 1672917511074
    assert applied["settle"] == "USDC"
    assert set(WS_NAMES) == set(REST_NAMES) == set(QUOTE_FIELDS)


def test_it_shows_a_zero_bid_as_no_quote(row) -> None:
    applied = apply_ticker(row, DOCS_SAMPLE, ts=1, received_ts=1)
    assert (applied["bid_price"], applied["bid_size"], applied["bid_iv"]) == (None, None, None)
    assert applied["predicted_delivery_price"] is None


def test_it_keeps_previous_values_for_missing_fields(row) -> None:
    first = apply_ticker(row, DOCS_SAMPLE, ts=1, received_ts=1)
    second = apply_ticker(first, {"symbol": "BTC-6JAN23-17500-C", "markPrice": "8"}, ts=2, received_ts=2)
    assert second["mark_price"] == 8.0
    assert second["mark_iv"] == 0.4896


@pytest.mark.parametrize(
    "bad",
    [{"markPrice": "abc"}, {"markPrice": "nan"}, {"delta": "inf"}, {"bidPrice": "-1"}, {"askSize": [1]}],
)
def test_it_rejects_a_snapshot_with_a_non_numeric_value(row, bad) -> None:
    good = apply_ticker(row, DOCS_SAMPLE, ts=1, received_ts=1)
    with pytest.raises(BadTicker):
        apply_ticker(good, {**DOCS_SAMPLE, **bad}, ts=2, received_ts=2)
    assert good["mark_price"] == 7.86976724


def test_it_rejects_a_snapshot_for_another_contract(row) -> None:
    with pytest.raises(BadTicker, match="arrived as"):
        apply_ticker(row, {**DOCS_SAMPLE, "symbol": "BTC-6JAN23-17500-P"}, ts=1, received_ts=1)


def test_it_reads_rest_field_names(row) -> None:
    applied = apply_ticker(
        row, {"bid1Price": "5", "bid1Iv": "0.4", "markIv": "0.45"}, ts=1, received_ts=1, names=REST_NAMES
    )
    assert (applied["bid_price"], applied["bid_iv"], applied["mark_iv"]) == (5.0, 0.4, 0.45)


_TEXTS = st.sampled_from(["0", "1", "2.5", "10", "0.4896", "-0.3"])
_SNAPSHOTS = st.dictionaries(st.sampled_from(sorted(WS_NAMES.values())), _TEXTS, max_size=len(WS_NAMES))


@given(st.lists(_SNAPSHOTS, min_size=1, max_size=6))
def test_applying_only_the_changed_text_gives_what_applying_everything_gives(snapshots) -> None:
    full = incremental = static_row(parse_symbol("BTC-6JAN23-17500-C"))
    previous = None
    for ts, data in enumerate(snapshots, start=1):
        try:
            expected = apply_ticker(full, data, ts=ts, received_ts=ts)
        except BadTicker:
            with pytest.raises(BadTicker):
                apply_ticker(incremental, data, ts=ts, received_ts=ts, previous_data=previous)
            continue
        incremental = apply_ticker(incremental, data, ts=ts, received_ts=ts, previous_data=previous)
        assert incremental == expected
        full, previous = expected, data
