"""The OpenAPI schema, the interactive docs (no CDN) and the browsable API on every route."""

from __future__ import annotations

import re

import pytest
import yaml
from django.test import Client

from chain.rows import ROW_FIELDS

pytestmark = pytest.mark.django_db

ROUTES = [
    "/api/analytics/{asset}/",
    "/api/analytics/{asset}/{expiry}/",
    "/api/assets/",
    "/api/assets/{symbol}/",
    "/api/assets/{symbol}/toggle/",
    "/api/chain/{asset}/",
    "/api/expiries/{asset}/",
    "/api/health/",
    "/api/health/live/",
    "/api/health/ready/",
    "/api/options/{asset}/",
    "/api/stats/",
    "/api/strikes/{asset}/",
    "/api/summary/{asset}/",
    "/api/token/",
]


def test_it_describes_every_route_once_in_openapi_3(client: Client) -> None:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert sorted(schema["paths"]) == ROUTES
    options = schema["paths"]["/api/options/{asset}/"]["get"]
    assert {parameter["name"] for parameter in options["parameters"]} == {
        "asset",
        "expiry",
        "type",
        "settle",
        "strike",
        "strike_min",
        "strike_max",
        "atm",
        "ordering",
        "format",
    }
    assert set(options["responses"]) == {"200", "400", "404", "409", "429", "503"}
    row = schema["components"]["schemas"]["OptionRow"]["properties"]
    assert tuple(row) == ROW_FIELDS, "every field of a row, in row order"
    mark_iv = row["mark_iv"]
    assert mark_iv["nullable"] is True
    assert "0.4896 is 48.96 %" in mark_iv["description"]
    assert row["itm_probability"]["nullable"] is True
    assert "N(d2) for a call" in row["itm_probability"]["description"]
    # The analytics are described field by field, from the TypedDicts the feed builds them with.
    expiry_analytics = schema["components"]["schemas"]["ExpiryAnalyticsPage"]["properties"]["analytics"]
    assert {"atm_iv", "rr_25d", "max_pain", "gamma_flip", "by_strike", "missing"} <= set(expiry_analytics["properties"])
    feed_figures = schema["components"]["schemas"]["FeedFigures"]["properties"]
    for lag in ("lag_p50_ms", "lag_p99_ms"):
        assert feed_figures[lag]["type"] == "number"
        assert feed_figures[lag]["nullable"] is True
        assert lag in schema["components"]["schemas"]["FeedFigures"]["required"]


def test_it_serves_the_interactive_docs_from_its_own_static_files(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)


@pytest.mark.parametrize(
    "path",
    [
        "/api/",
        "/api/options/SOL/",
        "/api/chain/SOL/",
        "/api/expiries/SOL/",
        "/api/strikes/SOL/?expiry=2SEP26",
        "/api/summary/SOL/",
        "/api/analytics/SOL/",
        "/api/analytics/SOL/2SEP26/",
        "/api/stats/",
        "/api/health/",
        "/api/health/live/",
        "/api/health/ready/",
        "/api/assets/",
        "/api/assets/SOL/",
    ],
)
def test_it_renders_every_route_in_the_browsable_api(client: Client, fill, path: str) -> None:
    fill("SOL", limit_expiries=1)
    response = client.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code in (200, 404, 503)
    assert response["Content-Type"].startswith("text/html")
    assert "Django REST framework" in response.content.decode()


def test_the_browsable_api_shows_the_first_rows_of_a_long_answer_and_the_json_has_them_all(
    client: Client, fill
) -> None:
    """The full BTC chain (778 contracts) took 1.7 s to render in the browsable API; it shows 50 entries now."""
    fill("BTC")
    page = client.get("/api/options/BTC/", HTTP_ACCEPT="text/html").content.decode()
    rows = client.get("/api/options/BTC/", HTTP_ACCEPT="application/json").json()["data"]
    assert len(rows) == 778
    assert "shows the first 50 of 778 entries" in page
    assert page.count("&quot;symbol&quot;") == 50  # all 778 before
    csv_lines = client.get("/api/options/BTC/", {"format": "csv"}).content.decode().splitlines()
    assert len(csv_lines) == 1 + 778
