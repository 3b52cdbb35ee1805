"""The chain page's HTML routes (the page itself runs in a real browser: tests/browser/)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from assets.models import Asset

pytestmark = pytest.mark.django_db


def page_config(response: Any) -> dict[str, Any]:
    html = response.content.decode()
    start = html.index('<script id="chain-config" type="application/json">') + len(
        '<script id="chain-config" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_it_sends_the_home_page_to_the_first_enabled_asset(client: Client) -> None:
    Asset.objects.filter(symbol="BTC").update(enabled=False)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/chain/ETH/"


def test_it_says_so_when_no_asset_is_enabled(client: Client) -> None:
    Asset.objects.update(enabled=False)
    response = client.get("/")
    assert response.status_code == 200
    assert b"No asset is enabled" in response.content


def test_the_chain_page_has_a_tab_per_enabled_asset_and_its_live_config(
    client: Client, fill: Callable[..., list[Any]]
) -> None:
    rows = fill("BTC", limit_expiries=2)
    Asset.objects.filter(symbol="SOL").update(enabled=False)
    response = client.get("/chain/BTC/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-asset="BTC"' in html
    assert 'data-asset="ETH"' in html
    assert 'data-asset="SOL"' not in html
    assert "/static/chain/app.js" in html
    assert "/static/vendor/uplot/uPlot.min.css" in html
    assert "cdn" not in html.lower()

    config = page_config(response)
    assert config["asset"] == "BTC"
    assert config["socket_path"] == "/ws/chain/BTC/"
    assert config["indexes_url"] == "/chain/indexes.json"
    assert config["stale_after_ms"] == 2_000
    assert [tab["symbol"] for tab in config["assets"]] == ["BTC", "ETH"]
    assert config["assets"][0]["index_price"] == 110_000.0
    assert config["assets"][0]["state"] == "live"
    assert config["assets"][1]["index_price"] is None
    deliveries = {row["expiry"]: row["delivery_ms"] for row in rows}
    assert config["expiries"] == [
        {"expiry": code, "delivery_ms": delivery} for code, delivery in sorted(deliveries.items(), key=lambda x: x[1])
    ]


def test_it_redirects_a_lower_case_symbol(client: Client) -> None:
    response = client.get("/chain/eth/")
    assert response.status_code == 302
    assert response["Location"] == "/chain/ETH/"


@pytest.mark.parametrize(("path", "message"), [("/chain/XYZ/", "No asset XYZ"), ("/chain/SOL/", "SOL is disabled")])
def test_it_answers_404_for_an_unknown_or_disabled_asset(client: Client, path: str, message: str) -> None:
    Asset.objects.filter(symbol="SOL").update(enabled=False)
    response = client.get(path)
    assert response.status_code == 404
    assert message in response.content.decode()


def test_the_index_prices_of_the_tabs_and_the_lags_come_from_the_feeds(
    client: Client, fill: Callable[..., list[Any]]
) -> None:
    fill("ETH", limit_expiries=1)
    response = client.get("/chain/indexes.json")
    assert response.status_code == 200
    assets = {tab["symbol"]: tab for tab in response.json()["assets"]}
    assert set(assets) == {"BTC", "ETH", "SOL"}
    assert assets["ETH"] == {
        "symbol": "ETH",
        "label": "Ethereum",
        "index_price": 4400.0,
        "state": "live",
        "lag_p50_ms": 182.0,
        "lag_p99_ms": 431.0,
    }
    assert assets["BTC"]["index_price"] is None
    assert assets["BTC"]["lag_p50_ms"] is None
