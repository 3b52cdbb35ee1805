"""``/api/chain/``, ``/api/expiries/``, ``/api/strikes/`` and ``/api/summary/`` against a real chain in Redis."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict

import pytest
import redis
from django.test import Client

from chain.filters import SECONDS_PER_YEAR, atm_strike, forward_price
from ingest.normalize import ContractRow
from ingest.symbols import parse_expiry_code
from tests.chain.market import fill_chain, real_contracts, write_status

pytestmark = pytest.mark.django_db


def expiries_in_order(rows: list[ContractRow]) -> list[str]:
    return [expiry for _, expiry in sorted({(row["delivery_ms"], row["expiry"]) for row in rows})]


def both_settles_expiry(rows: list[ContractRow]) -> str:
    settles: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        settles[row["expiry"]].add(row["settle"])
    return next(expiry for expiry in expiries_in_order(rows) if settles[expiry] == {"USDT", "USDC"})


def test_it_puts_the_call_and_the_put_of_each_strike_side_by_side(client: Client, btc_chain: list[ContractRow]) -> None:
    expiry = both_settles_expiry(btc_chain)
    usdc = [row for row in btc_chain if row["expiry"] == expiry and row["settle"] == "USDC"]
    before = int(time.time() * 1000)
    body = client.get("/api/chain/BTC/", {"expiry": expiry, "settle": "usdc"}).json()

    strikes = sorted({row["strike"] for row in usdc})
    assert [pair["strike"] for pair in body["data"]] == strikes
    assert body["total"] == len(strikes)
    for pair in body["data"]:
        assert pair["call"]["type"] == "call"
        assert pair["put"]["type"] == "put"
        assert pair["call"]["strike"] == pair["put"]["strike"] == pair["strike"]
        assert pair["call"]["settle"] == pair["put"]["settle"] == "USDC"
        assert pair["call"]["ts"] is not None
    delivery_ms = usdc[0]["delivery_ms"]
    assert body["expiry"] == expiry
    assert body["expiry_at"] == usdc[0]["expiry_at"]
    assert body["expiry_at"].endswith("T08:00:00Z")
    assert body["settle"] == "USDC"
    assert body["settles"] == ["USDC", "USDT"]
    assert body["seconds_to_expiry"] == pytest.approx((delivery_ms - before) / 1000, abs=5)
    assert body["years_to_expiry"] == pytest.approx(body["seconds_to_expiry"] / SECONDS_PER_YEAR, rel=1e-5)
    assert body["forward"] == forward_price(usdc)
    assert body["atm_strike"] == atm_strike(strikes, body["forward"])
    assert body["index_price"] == 110000.0
    assert body["feed"]["state"] == "live"


def test_each_contract_carries_its_moneyness_chance_in_the_money_and_spreads(
    client: Client, btc_chain: list[ContractRow]
) -> None:
    expiry = both_settles_expiry(btc_chain)
    response = client.get("/api/chain/BTC/", {"expiry": expiry, "settle": "USDT"})
    assert b"NaN" not in response.content
    assert b"Infinity" not in response.content
    pairs = response.json()["data"]
    one_sided = 0
    for pair in pairs:
        call, put = pair["call"], pair["put"]
        for row in (call, put):
            assert row["moneyness"] == pytest.approx(row["strike"] / row["underlying_price"], rel=1e-15)
            assert row["log_moneyness"] == pytest.approx(math.log(row["moneyness"]), rel=1e-12, abs=1e-15)
            assert 0.0 <= row["itm_probability"] <= 1.0
            if row["bid_price"] is None or row["ask_price"] is None:
                one_sided += 1
                assert row["spread"] is None
            else:
                assert row["spread"] == pytest.approx(row["ask_price"] - row["bid_price"])
                assert row["iv_spread"] == pytest.approx(row["ask_iv"] - row["bid_iv"])
                assert 0 < row["iv_spread"] < 0.1, "a fraction: vol points / 100"
        # A call and a put of one strike, one forward and one IV: certain to finish in the money between them
        # (their rows' ts differ by up to 3 s, which moves N(d2) by far less than this).
        assert call["itm_probability"] + put["itm_probability"] == pytest.approx(1.0, abs=1e-6)
    assert one_sided > 0, "the market has contracts nobody bids"
    # Ordered by the moneyness of each contract, the calls of an expiry are in strike order.
    calls = client.get("/api/options/BTC/", {"expiry": expiry, "type": "call", "ordering": "moneyness"}).json()
    strikes = [row["strike"] for row in calls["data"] if row["settle"] == "USDT"]
    assert strikes == sorted(strikes)


def test_it_shows_the_nearest_expiry_in_usdt_when_not_told(client: Client, btc_chain: list[ContractRow]) -> None:
    body = client.get("/api/chain/btc").json()
    assert body["expiry"] == expiries_in_order(btc_chain)[0]
    assert body["settle"] == "USDT"
    assert body["total"] > 0


def test_it_shows_usdc_when_the_expiry_lists_no_usdt(client: Client, redis_client: redis.Redis) -> None:
    contracts = [contract for contract in real_contracts("ETH") if contract.settle == "USDC"]
    fill_chain(redis_client, asset="ETH", contracts=contracts)
    body = client.get("/api/chain/ETH/").json()
    assert body["settle"] == "USDC"
    assert body["settles"] == ["USDC"]
    assert body["total"] > 0


def test_it_leaves_a_side_empty_when_only_one_is_listed(client: Client, redis_client: redis.Redis) -> None:
    contracts = real_contracts("SOL", limit_expiries=1)
    lonely = next(contract for contract in contracts if contract.option_type == "call")
    contracts = [c for c in contracts if not (c.strike == lonely.strike and c.option_type == "put")]
    fill_chain(redis_client, asset="SOL", contracts=contracts)
    pairs = client.get("/api/chain/SOL/").json()["data"]
    pair = next(pair for pair in pairs if pair["strike"] == float(lonely.strike))
    assert pair["call"]["symbol"] == lonely.symbol
    assert pair["put"] is None


def test_it_answers_404_for_an_expiry_the_asset_does_not_list(client: Client, btc_chain: list[ContractRow]) -> None:
    response = client.get("/api/chain/BTC/", {"expiry": "1JAN30"})
    assert response.status_code == 404
    assert response.json() == {"detail": "BTC has no expiry 1JAN30 listed; see /api/expiries/BTC/"}


def test_it_answers_an_empty_chain_for_an_asset_without_data(client: Client) -> None:
    body = client.get("/api/chain/SOL/").json()
    assert (body["expiry"], body["total"], body["data"], body["atm_strike"]) == (None, 0, [], None)
    assert body["feed"]["state"] is None


def test_it_lists_expiries_in_delivery_order_with_counts_per_settle_coin(
    client: Client, btc_chain: list[ContractRow]
) -> None:
    counts = Counter((row["expiry"], row["settle"]) for row in btc_chain)
    body = client.get("/api/expiries/BTC").json()
    assert [entry["expiry"] for entry in body["data"]] == expiries_in_order(btc_chain)
    assert body["total"] == len(body["data"]) == 11
    for entry in body["data"]:
        expected = {"USDT": counts[(entry["expiry"], "USDT")], "USDC": counts[(entry["expiry"], "USDC")]}
        assert entry["contracts_by_settle"] == expected
        assert entry["contracts"] == sum(expected.values())
        assert entry["expiry_at"] == f"{parse_expiry_code(entry['expiry']).isoformat()}T08:00:00Z"
        assert entry["seconds_to_expiry"] > 0
    assert sum(entry["contracts"] for entry in body["data"]) == 778
    delays = [entry["seconds_to_expiry"] for entry in body["data"]]
    assert delays == sorted(delays)


def test_it_lists_the_strikes_of_an_expiry_in_numeric_order(client: Client, btc_chain: list[ContractRow]) -> None:
    expiry = both_settles_expiry(btc_chain)
    expected = sorted({row["strike"] for row in btc_chain if row["expiry"] == expiry})
    for value in (expiry, parse_expiry_code(expiry).isoformat()):
        body = client.get("/api/strikes/BTC/", {"expiry": value}).json()
        assert body["data"] == expected
        assert body["total"] == len(expected)
        assert body["expiry"] == expiry


def test_it_lists_decimal_strikes_as_numbers(client: Client, redis_client: redis.Redis) -> None:
    from ingest.symbols import parse_symbol

    contracts = [parse_symbol(f"SOL-26DEC30-{strike}-C-USDT") for strike in ("0.4", "10", "2.5", "100")]
    fill_chain(redis_client, asset="SOL", contracts=contracts)
    assert client.get("/api/strikes/SOL/", {"expiry": "26DEC30"}).json()["data"] == [0.4, 2.5, 10.0, 100.0]


def test_it_needs_the_expiry_to_list_strikes(client: Client, btc_chain: list[ContractRow]) -> None:
    response = client.get("/api/strikes/BTC/")
    assert response.status_code == 400
    assert response.json() == {"expiry": ["This field is required."]}
    assert client.get("/api/strikes/BTC/", {"expiry": "1JAN30"}).status_code == 404


def test_it_sums_up_the_chain_by_type_and_expiry(client: Client, btc_chain: list[ContractRow]) -> None:
    body = client.get("/api/summary/BTC/").json()
    calls = [row for row in btc_chain if row["type"] == "call"]
    puts = [row for row in btc_chain if row["type"] == "put"]
    call_oi = sum(row["open_interest"] or 0 for row in calls)
    put_oi = sum(row["open_interest"] or 0 for row in puts)
    call_volume = sum(row["volume_24h"] or 0 for row in calls)
    put_volume = sum(row["volume_24h"] or 0 for row in puts)

    assert (body["contracts"], body["calls"], body["puts"]) == (778, len(calls), len(puts))
    assert body["contracts_by_settle"] == {"USDT": 684, "USDC": 94}
    assert body["index_price"] == 110000.0
    assert body["open_interest"] == pytest.approx({"call": call_oi, "put": put_oi, "total": call_oi + put_oi})
    assert body["volume_24h"]["total"] == pytest.approx(call_volume + put_volume)
    assert body["put_call_ratio"]["open_interest"] == pytest.approx(put_oi / call_oi, rel=1e-5)
    assert body["put_call_ratio"]["volume_24h"] == pytest.approx(put_volume / call_volume, rel=1e-5)

    assert [entry["expiry"] for entry in body["expiries"]] == expiries_in_order(btc_chain)
    for entry in body["expiries"]:
        group = [row for row in btc_chain if row["expiry"] == entry["expiry"]]
        strikes = sorted({row["strike"] for row in group})
        atm = atm_strike(strikes, forward_price(group))
        ivs = [row["mark_iv"] for row in group if row["strike"] == atm and row["mark_iv"] is not None]
        assert entry["contracts"] == len(group)
        assert entry["calls"] + entry["puts"] == len(group)
        assert entry["atm_strike"] == atm
        assert entry["atm_mark_iv"] == pytest.approx(sum(ivs) / len(ivs), abs=1e-6)
        assert 0.2 < entry["atm_mark_iv"] < 1.5, "a fraction, not a percentage"


def test_it_sums_up_one_settle_coin_when_asked(client: Client, btc_chain: list[ContractRow]) -> None:
    body = client.get("/api/summary/BTC/", {"settle": "USDC"}).json()
    assert body["settle"] == "USDC"
    assert body["contracts"] == 94
    assert body["contracts_by_settle"] == {"USDT": 0, "USDC": 94}
    assert {entry["expiry"] for entry in body["expiries"]} == {
        row["expiry"] for row in btc_chain if row["settle"] == "USDC"
    }


def test_it_gives_no_put_call_ratio_without_calls(client: Client, redis_client: redis.Redis) -> None:
    contracts = [contract for contract in real_contracts("SOL", limit_expiries=1) if contract.option_type == "put"]
    fill_chain(redis_client, asset="SOL", contracts=contracts)
    write_status(redis_client, asset="SOL")
    body = client.get("/api/summary/SOL/").json()
    assert body["calls"] == 0
    assert body["put_call_ratio"] == {"open_interest": None, "volume_24h": None}


def test_it_sums_up_an_asset_without_data_as_zeros(client: Client) -> None:
    body = client.get("/api/summary/ETH/").json()
    assert (body["contracts"], body["index_price"], body["expiries"]) == (0, None, [])
    assert body["put_call_ratio"] == {"open_interest": None, "volume_24h": None}
