"""``/api/options/<ASSET>/``: the flat rows, their filters, CSV, and every way of asking wrongly."""

from __future__ import annotations

import csv
import io
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from assets.services import assets_set_enabled
from chain.filters import atm_strike
from chain.rows import ROW_FIELDS
from ingest.normalize import ContractRow
from ingest.symbols import parse_expiry_code
from optionsite.throttling import AnonRedisRateThrottle

pytestmark = pytest.mark.django_db


def rows_by_symbol(rows: list[ContractRow]) -> dict[str, ContractRow]:
    return {row["symbol"]: row for row in rows}


def an_expiry_with_both_settle_coins(rows: list[ContractRow]) -> str:
    settles: dict[str, set[str]] = {}
    for row in rows:
        settles.setdefault(row["expiry"], set()).add(row["settle"])
    return next(expiry for expiry, coins in sorted(settles.items()) if coins == {"USDT", "USDC"})


def test_it_keeps_the_seed_users_envelope(client: Client, btc_chain: list[ContractRow]) -> None:
    body = client.get("/api/options/BTC").json()
    assert body["asset"] == "BTC"
    assert body["total"] == len(body["data"]) == len(btc_chain) == 778
    assert body["feed"] == {
        "state": "live",
        "fresh": True,
        "data_age": pytest.approx(0.3, abs=1),
        "last_message_age": pytest.approx(0.2, abs=1),
    }


@pytest.mark.parametrize("path", ["/api/options/BTC", "/api/options/BTC/", "/api/options/btc", "/api/options/bTc/"])
def test_it_answers_with_or_without_the_slash_in_any_case_without_redirecting(
    client: Client, btc_chain: list[ContractRow], path: str
) -> None:
    response = client.get(path, {"type": "call"})
    assert response.status_code == 200
    assert response.json()["asset"] == "BTC"
    assert response.json()["total"] == 389


def test_it_serves_every_field_of_every_row_as_json_numbers(client: Client, btc_chain: list[ContractRow]) -> None:
    written = rows_by_symbol(btc_chain)
    before = int(time.time() * 1000)
    body = client.get("/api/options/BTC/").json()
    assert before <= body["ts"] <= int(time.time() * 1000)
    data = body["data"]
    for row in data:
        assert tuple(row) == ROW_FIELDS
        assert row == written[row["symbol"]]
        for name in ("strike", "mark_price", "mark_iv", "delta", "index_price", "underlying_price", "open_interest"):
            assert isinstance(row[name], float)
    assert {row["settle"] for row in data} == {"USDT", "USDC"}


def test_it_shows_null_not_zero_where_nobody_quotes(client: Client, fill) -> None:
    fill("SOL", quoted=False)
    row = client.get("/api/options/SOL/").json()["data"][0]
    for name in ("bid_price", "bid_size", "bid_iv", "ask_price", "mark_price", "mark_iv", "delta", "ts"):
        assert row[name] is None
    assert isinstance(row["strike"], float)


def test_it_keeps_a_missing_bid_null_beside_a_quoted_ask(client: Client, btc_chain: list[ContractRow]) -> None:
    no_bid = next(row for row in btc_chain if row["bid_price"] is None and row["ask_price"] is not None)
    body = client.get("/api/options/BTC/", {"expiry": no_bid["expiry"], "strike": str(no_bid["strike"])}).json()
    row = next(row for row in body["data"] if row["symbol"] == no_bid["symbol"])
    assert (row["bid_price"], row["bid_size"], row["bid_iv"]) == (None, None, None)
    assert row["ask_price"] == no_bid["ask_price"]
    assert row["ask_price"] > 0


def test_it_takes_the_expiry_as_a_bybit_code_or_an_iso_date(client: Client, btc_chain: list[ContractRow]) -> None:
    expiry = an_expiry_with_both_settle_coins(btc_chain)
    expected = sorted(row["symbol"] for row in btc_chain if row["expiry"] == expiry)
    iso = parse_expiry_code(expiry).isoformat()
    padded = expiry.zfill(7)
    for value in (expiry, expiry.lower(), padded, iso):
        body = client.get("/api/options/BTC/", {"expiry": value}).json()
        assert sorted(row["symbol"] for row in body["data"]) == expected, value


def test_it_filters_by_type_and_settle_coin_without_merging_usdt_and_usdc(
    client: Client, btc_chain: list[ContractRow]
) -> None:
    expiry = an_expiry_with_both_settle_coins(btc_chain)
    for option_type in ("call", "put"):
        for settle in ("USDT", "USDC"):
            expected = {
                row["symbol"]
                for row in btc_chain
                if row["expiry"] == expiry and row["type"] == option_type and row["settle"] == settle
            }
            query = {"expiry": expiry, "type": option_type, "settle": settle.lower()}
            body = client.get("/api/options/BTC/", query).json()
            assert {row["symbol"] for row in body["data"]} == expected
            assert body["total"] == len(expected) > 0


def test_it_filters_by_strike_and_by_a_strike_range(client: Client, btc_chain: list[ContractRow]) -> None:
    exact = client.get("/api/options/BTC/", {"strike": "110000"}).json()["data"]
    assert exact
    assert {row["strike"] for row in exact} == {110000.0}
    assert len(exact) == sum(1 for row in btc_chain if row["strike"] == 110000)

    ranged = client.get("/api/options/BTC/", {"strike_min": "100000", "strike_max": "120000"}).json()["data"]
    assert len(ranged) == sum(1 for row in btc_chain if 100000 <= row["strike"] <= 120000)
    assert all(100000 <= row["strike"] <= 120000 for row in ranged)


def test_it_keeps_n_strikes_each_side_of_the_money_per_expiry(client: Client, btc_chain: list[ContractRow]) -> None:
    expiry = an_expiry_with_both_settle_coins(btc_chain)
    group = [row for row in btc_chain if row["expiry"] == expiry and row["settle"] == "USDT"]
    strikes = sorted({row["strike"] for row in group})
    forward = max(group, key=lambda row: row["ts"] or 0)["underlying_price"]
    centre = strikes.index(atm_strike(strikes, forward))  # type: ignore[arg-type]
    expected = set(strikes[max(0, centre - 2) : centre + 3])

    body = client.get("/api/options/BTC/", {"expiry": expiry, "settle": "USDT", "atm": "2"}).json()
    assert {row["strike"] for row in body["data"]} == expected
    assert body["total"] == 2 * len(expected)

    calls = client.get("/api/options/BTC/", {"expiry": expiry, "settle": "USDT", "atm": "2", "type": "call"}).json()
    assert {row["strike"] for row in calls["data"]} == expected

    every_expiry = client.get("/api/options/BTC/", {"atm": 0}).json()["data"]
    groups = {(row["expiry"], row["settle"]) for row in btc_chain}
    assert len(every_expiry) == 2 * len(groups)


def test_it_orders_by_expiry_strike_type_and_settle_by_default(client: Client, btc_chain: list[ContractRow]) -> None:
    data = client.get("/api/options/BTC/").json()["data"]
    keys = [(row["delivery_ms"], row["strike"], row["type"], row["settle"]) for row in data]
    assert keys == sorted(keys)


def test_it_orders_by_several_fields_with_nulls_last(client: Client, btc_chain: list[ContractRow]) -> None:
    data = client.get("/api/options/BTC/", {"ordering": "-bid_price,symbol"}).json()["data"]
    bids = [row["bid_price"] for row in data]
    quoted = [bid for bid in bids if bid is not None]
    assert bids == sorted(quoted, reverse=True) + [None] * (len(bids) - len(quoted))
    assert None in bids
    unquoted = [row["symbol"] for row in data if row["bid_price"] is None]
    assert unquoted == sorted(unquoted)


def test_it_exports_the_same_rows_as_csv(client: Client, btc_chain: list[ContractRow]) -> None:
    query = {"type": "put", "strike_max": "90000"}
    json_rows = client.get("/api/options/BTC/", query).json()["data"]
    response = client.get("/api/options/BTC/", {**query, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="BTC-options.csv"'
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert tuple(lines[0]) == ROW_FIELDS
    assert [line[0] for line in lines[1:]] == [row["symbol"] for row in json_rows]
    for line, row in zip(lines[1:], json_rows, strict=True):
        cells = dict(zip(ROW_FIELDS, line, strict=True))
        assert cells["bid_price"] == ("" if row["bid_price"] is None else repr(row["bid_price"]))
        assert float(cells["strike"]) == row["strike"]
        assert cells["crossed"] == ("true" if row["crossed"] else "false")


def test_it_exports_csv_to_an_accept_header_too(client: Client, btc_chain: list[ContractRow]) -> None:
    response = client.get("/api/options/BTC/", {"atm": 0}, HTTP_ACCEPT="text/csv")
    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode().count("\n") == 1 + client.get("/api/options/BTC/", {"atm": 0}).json()["total"]


def test_it_answers_an_error_as_json_even_when_csv_was_asked_for(client: Client, btc_chain: list[ContractRow]) -> None:
    response = client.get("/api/options/BTC/", {"format": "csv", "type": "straddle"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "type" in response.json()


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ({"expiry": "31FEB26"}, "expiry", "names a day that does not exist"),
        ({"expiry": "2026-02-30"}, "expiry", "is not a date that exists"),
        ({"expiry": "1899-12-31"}, "expiry", "outside the years 2000-2099"),
        ({"expiry": "next friday"}, "expiry", "26DEC25"),
        ({"type": "straddle"}, "type", "not a valid choice"),
        ({"settle": "BTC"}, "settle", "not a valid choice"),
        ({"strike": "abc"}, "strike", "valid number"),
        ({"strike": "nan"}, "strike", "valid number"),
        ({"strike": "inf"}, "strike", "valid number"),
        ({"strike": "-5"}, "strike", "greater than or equal to 0"),
        ({"strike_min": "120000", "strike_max": "100000"}, "strike_max", "below strike_min"),
        ({"strike": "90000", "strike_min": "100000"}, "strike", "outside strike_min..strike_max"),
        ({"atm": "-1"}, "atm", "greater than or equal to 0"),
        ({"atm": "1.5"}, "atm", "valid integer"),
        ({"atm": "9" * 5000}, "atm", "String value too large"),
        ({"ordering": "implied_vol"}, "ordering", "unknown field 'implied_vol'"),
        ({"ordering": "strike,-strike"}, "ordering", "given twice"),
        ({"ordering": "strike,"}, "ordering", "empty field name"),
        ({"format": "xml"}, "format", "unknown format 'xml'"),
        ({"expiry": "26DEC25\x00"}, "expiry", "is not an expiry code"),
        ({"ordering": "strike\x00"}, "ordering", "Null characters are not allowed"),
    ],
)
def test_it_names_the_field_and_the_reason_of_a_bad_parameter(
    client: Client, btc_chain: list[ContractRow], query: dict[str, str], field: str, reason: str
) -> None:
    response = client.get("/api/options/BTC/", query)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert reason in " ".join(body[field])


def test_it_validates_a_query_string_once_and_a_bad_one_every_time(
    client: Client, btc_chain: list[ContractRow], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chain import serializers

    validations: list[str] = []
    is_valid = serializers.OptionsQuerySerializer.is_valid

    def counted(self: serializers.OptionsQuerySerializer, **kwargs: bool) -> bool:
        validations.append(self.initial_data.urlencode())
        return is_valid(self, **kwargs)

    monkeypatch.setattr(serializers.OptionsQuerySerializer, "is_valid", counted)
    good = "type=put&strike_min=100000&ordering=-strike"
    first, second = (client.get(f"/api/options/BTC/?{good}").json() for _ in range(2))
    assert [row["symbol"] for row in first["data"]] == [row["symbol"] for row in second["data"]]
    assert first["total"] > 0
    bad = "type=put&strike_min=abc"
    assert [client.get(f"/api/options/BTC/?{bad}").status_code for _ in range(2)] == [400, 400]
    assert validations == [good, bad, bad]


def test_it_takes_an_empty_parameter_as_not_given(client: Client, btc_chain: list[ContractRow]) -> None:
    body = client.get("/api/options/BTC/", {"expiry": "", "type": "", "strike": ""}).json()
    assert body["total"] == 778


@pytest.mark.parametrize("asset", ["XRP", "BTC-USDT", "B", "%00", "ÄÖÜ", "x" * 300])
def test_it_answers_404_for_an_asset_nobody_configured(client: Client, asset: str) -> None:
    response = client.get(f"/api/options/{asset}/")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("unknown asset")


def test_it_answers_409_for_a_disabled_asset_and_serves_none_of_its_data(
    client: Client, fill, django_capture_on_commit_callbacks
) -> None:
    fill("SOL", limit_expiries=1)
    with django_capture_on_commit_callbacks(execute=True):
        assets_set_enabled(symbols=["sol"], enabled=False)
    for path in ("/api/options/SOL/", "/api/chain/SOL/", "/api/expiries/SOL/", "/api/summary/SOL/"):
        response = client.get(path)
        assert response.status_code == 409
        assert response.json() == {
            "detail": "asset SOL is disabled; its feed is stopped and it serves no data",
            "asset": "SOL",
            "enabled": False,
        }


def test_it_answers_an_enabled_asset_without_data_with_no_rows_and_no_feed(client: Client) -> None:
    body = client.get("/api/options/ETH/").json()
    assert body == {
        "asset": "ETH",
        "total": 0,
        "ts": body["ts"],
        "feed": {"state": None, "fresh": False, "data_age": None, "last_message_age": None},
        "data": [],
    }


def test_it_says_when_the_data_it_serves_is_stale(client: Client, fill, redis_client) -> None:
    from tests.chain.market import write_status

    fill("SOL", limit_expiries=1)
    write_status(redis_client, asset="SOL", state="stale", last_message_age=120, data_age=120)
    body = client.get("/api/options/SOL/").json()
    assert body["total"] > 0
    assert body["feed"]["state"] == "stale"
    assert body["feed"]["fresh"] is False
    assert body["feed"]["last_message_age"] == pytest.approx(120, abs=2)


def test_it_renders_the_browsable_api_for_a_browser(client: Client, fill) -> None:
    fill("SOL", limit_expiries=1)
    response = client.get("/api/options/SOL/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "SOL-" in response.content.decode()
    assert "Options" in response.content.decode()


def test_it_throttles_anonymous_clients_but_not_signed_in_ones(
    client: Client, fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill("SOL", limit_expiries=1)
    monkeypatch.setattr(AnonRedisRateThrottle, "THROTTLE_RATES", {"anon": "3/min"})
    statuses = [client.get("/api/options/SOL/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get("/api/health/").status_code != 429

    client.force_login(User.objects.create_user("trader", password="pw"))
    assert [client.get("/api/options/SOL/").status_code for _ in range(4)] == [200] * 4
