import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.contracts import MS_PER_YEAR, set_contract_measures
from analytics.measures import black76_delta, norm_cdf
from ingest.normalize import (
    MEASURE_FIELDS,
    QUOTE_FIELDS,
    REST_NAMES,
    WS_NAMES,
    BadTicker,
    apply_snapshot,
    apply_ticker,
    contract_hash_arguments,
    static_row,
)
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


# The same with a quoted bid.
QUOTED = {**DOCS_SAMPLE, "bidPrice": "5", "bidSize": "3", "bidIv": "0.45"}


@pytest.fixture
def row():
    return static_row(parse_symbol("BTC-6JAN23-17500-C"))


def bid(row) -> tuple[float | None, float | None, float | None]:
    return row["bid_price"], row["bid_size"], row["bid_iv"]


def ask(row) -> tuple[float | None, float | None, float | None]:
    return row["ask_price"], row["ask_size"], row["ask_iv"]


def without(data: dict[str, str], *names: str) -> dict[str, str]:
    return {name: value for name, value in data.items() if name not in names}


def with_measures(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its measures worked out again (they move with ``ts``)."""
    set_contract_measures(row)
    return row


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
    ("bad", "kept"),
    [
        ({"markPrice": "abc"}, "mark_price"),
        ({"markPrice": "nan"}, "mark_price"),
        ({"delta": "inf"}, "delta"),
        ({"gamma": None}, "gamma"),
        ({"bidPrice": "-1"}, "bid"),
        ({"askSize": [1]}, "ask"),
    ],
)
def test_it_keeps_the_previous_value_of_what_is_not_a_number(row, bad, kept) -> None:
    good = apply_ticker(row, QUOTED, ts=1, received_ts=1)
    applied = apply_snapshot(good, {**QUOTED, **bad, "lastPrice": "11"}, ts=2, received_ts=2)
    assert applied.kept == (kept,)
    assert applied.row == with_measures({**good, "last_price": 11.0, "ts": 2, "received_ts": 2})


def test_it_rejects_a_snapshot_for_another_contract(row) -> None:
    with pytest.raises(BadTicker, match="arrived as"):
        apply_ticker(row, {**DOCS_SAMPLE, "symbol": "BTC-6JAN23-17500-P"}, ts=1, received_ts=1)


def test_it_reads_rest_field_names(row) -> None:
    applied = apply_ticker(
        row,
        {"bid1Price": "5", "bid1Size": "2", "bid1Iv": "0.4", "markIv": "0.45"},
        ts=1,
        received_ts=1,
        names=REST_NAMES,
    )
    assert (applied["bid_price"], applied["bid_iv"], applied["mark_iv"]) == (5.0, 0.4, 0.45)


_TEXTS = st.sampled_from(["0", "1", "2.5", "10", "0.4896", "-0.3", "abc", None])
_SNAPSHOTS = st.dictionaries(st.sampled_from(sorted(WS_NAMES.values())), _TEXTS, max_size=len(WS_NAMES))


@given(st.lists(_SNAPSHOTS, min_size=1, max_size=6))
def test_applying_only_the_changed_text_gives_what_applying_everything_gives(snapshots) -> None:
    full = incremental = static_row(parse_symbol("BTC-6JAN23-17500-C"))
    previous = None
    for ts, data in enumerate(snapshots, start=1):
        try:
            expected = apply_snapshot(full, data, ts=ts, received_ts=ts)
        except BadTicker:
            with pytest.raises(BadTicker):
                apply_snapshot(incremental, data, ts=ts, received_ts=ts, previous_data=previous)
            continue
        applied = apply_snapshot(incremental, data, ts=ts, received_ts=ts, previous_data=previous)
        assert applied == expected
        # As the flusher does: only a snapshot applied whole stands for the row's text.
        full, incremental, previous = expected.row, applied.row, None if applied.kept else data


def test_it_keeps_the_whole_previous_bid_when_a_snapshot_lacks_its_size(row) -> None:
    first = apply_ticker(row, QUOTED, ts=1, received_ts=1)
    moved = {**QUOTED, "bidPrice": "6", "bidIv": "0.47", "markPrice": "8"}
    second = apply_ticker(first, without(moved, "bidSize"), ts=2, received_ts=2)
    assert bid(second) == (5.0, 3.0, 0.45)
    assert second["mark_price"] == 8.0  # the rest of the snapshot is applied
    assert second["ts"] == 2


def test_it_never_gives_an_empty_bid_a_size_without_a_price(row) -> None:
    empty = apply_ticker(row, DOCS_SAMPLE, ts=1, received_ts=1)
    assert bid(empty) == (None, None, None)
    quoted_later = {**DOCS_SAMPLE, "bidPrice": "6", "bidSize": "4", "bidIv": "0.47"}
    for part in (without(quoted_later, "bidPrice"), without(quoted_later, "bidSize", "bidIv")):
        assert bid(apply_ticker(empty, part, ts=2, received_ts=2)) == (None, None, None)


def named(data: dict[str, str], names: dict[str, str]) -> dict[str, str]:
    """``data`` (WebSocket names) under ``names``."""
    wire = {WS_NAMES[field]: names[field] for field in WS_NAMES}
    return {wire[name]: value for name, value in data.items() if name in wire}


@pytest.mark.parametrize("names", [WS_NAMES, REST_NAMES], ids=["websocket", "rest"])
def test_it_keeps_the_whole_previous_ask_when_its_iv_is_not_a_number(row, names) -> None:
    first = apply_ticker(row, named(QUOTED, names), ts=1, received_ts=1, names=names)
    moved = {**QUOTED, "askPrice": "11", "askSize": "2", "askIv": "abc", "bidPrice": "6"}
    second = apply_ticker(first, named(moved, names), ts=2, received_ts=2, names=names)
    assert ask(second) == (10.0, 5.1, 0.514)
    assert bid(second) == (6.0, 3.0, 0.45)


def test_it_takes_bybits_empty_side_as_no_quote(row) -> None:
    quoted = apply_ticker(row, QUOTED, ts=1, received_ts=1)
    emptied = apply_ticker(quoted, {**QUOTED, "bidPrice": "0", "bidSize": "0", "bidIv": "0"}, ts=2, received_ts=2)
    assert bid(emptied) == (None, None, None)
    assert ask(emptied) == (10.0, 5.1, 0.514)


def test_it_says_which_sides_and_fields_a_snapshot_could_not_set(row) -> None:
    first = apply_snapshot(row, QUOTED, ts=1, received_ts=1)
    assert first.kept == ()
    broken = {**without(QUOTED, "bidSize"), "askIv": "abc", "markPriceIv": "NaN", "delta": None}
    second = apply_snapshot(first.row, broken, ts=2, received_ts=2)
    assert second.kept == ("bid", "ask", "mark_iv", "delta")
    assert (bid(second.row), ask(second.row), second.row["mark_iv"]) == (bid(first.row), ask(first.row), 0.4896)
    # A field or a side that is absent altogether is no fault: Bybit leaves some out (docs/redis.md).
    assert apply_snapshot(first.row, without(QUOTED, "predictedDeliveryPrice"), ts=3, received_ts=3).kept == ()


@pytest.mark.parametrize("data", [{"symbol": "BTC-6JAN23-17500-C"}, {"markPrice": "abc", "bidPrice": "1"}])
def test_it_rejects_a_snapshot_it_can_apply_nothing_of(row, data) -> None:
    first = apply_ticker(row, QUOTED, ts=1, received_ts=1)
    with pytest.raises(BadTicker):
        apply_ticker(first, data, ts=2, received_ts=2)


def test_it_flags_a_crossed_book_and_clears_the_flag_when_it_uncrosses(row) -> None:
    assert row["crossed"] is False
    quotes = {**DOCS_SAMPLE, "bidSize": "1", "bidIv": "0.4", "askSize": "1", "askIv": "0.41"}
    crossed = apply_ticker(row, {**quotes, "bidPrice": "392.6", "askPrice": "392.3"}, ts=1, received_ts=1)
    assert crossed["crossed"] is True
    uncrossed = apply_ticker(crossed, {**quotes, "bidPrice": "392.1", "askPrice": "392.3"}, ts=2, received_ts=2)
    assert uncrossed["crossed"] is False
    locked = apply_ticker(uncrossed, {**quotes, "bidPrice": "392.3", "askPrice": "392.3"}, ts=3, received_ts=3)
    assert locked["crossed"] is False
    one_sided = apply_ticker(
        crossed, {**quotes, "bidPrice": "392.6", "askPrice": "0", "askSize": "0"}, ts=4, received_ts=4
    )
    assert (one_sided["ask_price"], one_sided["crossed"]) == (None, False)


def test_it_writes_the_crossed_flag_as_1_or_0_in_a_contract_hash(row) -> None:
    arguments = contract_hash_arguments([("crossed", True), ("bid_price", None), ("ask_price", 392.3)])
    assert arguments == ["crossed", "1", "bid_price", "", "ask_price", "392.3"]
    arguments = contract_hash_arguments(row.items())
    assert arguments[arguments.index("crossed") + 1] == "0"


def test_it_works_out_the_contracts_own_measures_on_the_row_a_ticker_makes(row) -> None:
    ts = 1672917511074  # the sample's, 20.7 hours before its delivery
    applied = apply_ticker(row, QUOTED, ts=ts, received_ts=ts + 6)
    forward, strike, vol = 16815.1, 17500.0, 0.4896
    years = (applied["delivery_ms"] - ts) / MS_PER_YEAR
    assert applied["moneyness"] == pytest.approx(strike / forward, rel=1e-15)
    assert applied["log_moneyness"] == pytest.approx(math.log(strike / forward), rel=1e-15)
    total_vol = vol * math.sqrt(years)
    d2 = (math.log(forward / strike) - total_vol**2 / 2) / total_vol
    itm_probability = applied["itm_probability"]
    assert itm_probability == pytest.approx(norm_cdf(d2), rel=1e-12)
    # The same T and model give Bybit's own delta (0.047831) to 3e-5, and N(d2) sits just below N(d1).
    delta = black76_delta(forward=forward, strike=strike, years=years, vol=vol, option_type="call")
    assert delta == pytest.approx(0.047831, abs=5e-5)
    assert itm_probability is not None
    assert 0.04 < itm_probability < delta
    assert applied["spread"] == 10.0 - 5.0
    assert applied["iv_spread"] == pytest.approx(0.514 - 0.45)


def test_a_listed_contract_has_no_measures_until_its_first_ticker_and_no_spread_without_both_sides(row) -> None:
    assert all(row[name] is None for name in MEASURE_FIELDS)
    one_sided = apply_ticker(row, DOCS_SAMPLE, ts=1672917511074, received_ts=1672917511080)  # nobody bids
    assert (one_sided["spread"], one_sided["iv_spread"]) == (None, None)
    assert one_sided["moneyness"] is not None
    assert one_sided["itm_probability"] is not None
    delivered = apply_ticker(one_sided, DOCS_SAMPLE, ts=one_sided["delivery_ms"], received_ts=one_sided["delivery_ms"])
    assert delivered["itm_probability"] is None
    assert delivered["moneyness"] == one_sided["moneyness"]


_ANY_TEXT = st.one_of(_TEXTS, st.floats().map(repr), st.sampled_from(["1e308", "-1e308", "5e-324", "1e-300"]))


@given(st.lists(st.dictionaries(st.sampled_from(sorted(WS_NAMES.values())), _ANY_TEXT), min_size=1, max_size=4))
def test_any_snapshots_give_measures_that_are_finite_or_null_and_of_the_row_alone(snapshots) -> None:
    current = static_row(parse_symbol("BTC-6JAN23-17500-P"))
    for ts, data in enumerate(snapshots, start=1672917511074):
        try:
            current = apply_ticker(current, data, ts=ts, received_ts=ts)
        except BadTicker:
            continue
        measures = [current[name] for name in MEASURE_FIELDS]  # type: ignore[literal-required]
        assert all(value is None or (type(value) is float and math.isfinite(value)) for value in measures)
        assert with_measures(dict(current)) == current
