"""The analytics view (term structure, by-strike activity, gamma exposure, smile), in a real Chromium against a
running stack.

The feed computes the analytics once a second; what the view shows is compared with the API's answer of the same
computation: the view's ``data-ts`` is its latest frame's ``ts``, the API's ``computed_ts`` the same instant.
"""

from __future__ import annotations

import csv
import io
import time
import urllib.request
from typing import Any

import orjson
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LiveStack, screenshot
from tests.browser.test_chain_page import open_chain

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEW = "#analytics"
PANELS = ("#term-panel", "#activity-panel", "#gex-panel", "#smile-panel-analytics")

TABLE = """panel => [...document.querySelectorAll(`${panel} .chart-table tbody tr`)].map(
  tr => [...tr.cells].map(td => td.textContent))"""


def api_json(live_stack: LiveStack, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{live_stack.base_url}{path}", timeout=5) as response:
        return orjson.loads(response.read())


def open_analytics(page: Any, live_stack: LiveStack) -> dict[str, str]:
    open_chain(page, live_stack)
    page.click('#mode button[data-mode="analytics"]')
    for panel in PANELS:
        expect(page.locator(panel)).to_have_attribute("data-state", "shown", timeout=15_000)
    return page.evaluate("({expiry: chainPage.state.expiry, settle: chainPage.state.settle})")


def open_tables(page: Any) -> None:
    for details in page.locator(f"{VIEW} details.chart-table").all():
        details.locator("summary").click()


def shown_with_answer(page: Any, live_stack: LiveStack, path: str) -> tuple[dict[str, list[list[str]]], dict]:
    """Every panel's table and the API's answer (``path``) of the same computation: both read at one ts."""
    deadline = time.monotonic() + 15
    while True:
        ts_before = int(page.eval_on_selector(VIEW, "view => view.dataset.ts"))
        tables = {panel: page.eval_on_selector(VIEW, TABLE.replace("${panel}", panel)) for panel in PANELS}
        answer = api_json(live_stack, path)
        ts_after = int(page.eval_on_selector(VIEW, "view => view.dataset.ts"))
        if answer["computed_ts"] == ts_before == ts_after:
            return tables, answer["analytics"]
        assert time.monotonic() < deadline, f"the view's ts {ts_after} never met the API's {answer['computed_ts']}"
        page.wait_for_timeout(150)


def number(text: str) -> float:
    return float(text.replace("\u2212", "-").replace(",", "").removesuffix(" %"))


def test_the_term_structure_is_the_apis_for_the_pages_settle_coin(live_stack: LiveStack, page: Any) -> None:
    view = open_analytics(page, live_stack)
    assert "view=analytics" in page.url
    expect(page.locator("#table-scroll")).to_be_hidden()
    expect(page.locator("#strip")).to_be_visible()
    open_tables(page)
    tables, analytics = shown_with_answer(page, live_stack, f"/api/analytics/BTC/?settle={view['settle']}")
    (structure,) = [item for item in analytics["term_structures"] if item["settle"] == view["settle"]]
    expected = [(point["expiry"], "listed", point["atm_iv"]) for point in structure["expiries"]]
    expected += [
        (f"{point['days']}d", "constant maturity", point["atm_iv"]) for point in structure["constant_maturities"]
    ]
    rows = tables["#term-panel"]
    assert sorted((tenor, kind) for tenor, kind, *_ in rows) == sorted((tenor, kind) for tenor, kind, _ in expected)
    by_tenor = {tenor: atm_iv for tenor, _, atm_iv in expected}
    days = [number(row[2]) for row in rows]
    assert days == sorted(days), "in order of time to delivery"
    for tenor, _, _, iv_text, why in rows:
        if by_tenor[tenor] is None:
            assert iv_text == "\N{EN DASH}", tenor
            assert why, tenor  # a null shows its reason
        else:
            assert abs(number(iv_text) - by_tenor[tenor] * 100) <= 0.005 + 1e-9, tenor
    assert any(atm_iv is not None for _, kind, atm_iv in expected if kind == "constant maturity")
    assert page.locator("#term-panel canvas").count() == 1
    screenshot(page, "analytics-view-desktop")
    assert page.errors == []


def test_the_by_strike_panels_are_the_apis_expiry_with_walls_and_flip(live_stack: LiveStack, page: Any) -> None:
    view = open_analytics(page, live_stack)
    open_tables(page)
    path = f"/api/analytics/BTC/{view['expiry']}/?settle={view['settle']}"
    tables, expiry = shown_with_answer(page, live_stack, path)
    levels = expiry["by_strike"]
    assert levels, "the simulator's expiry has strikes"
    activity, gex = tables["#activity-panel"], tables["#gex-panel"]
    assert [number(row[0]) for row in activity] == [level["strike"] for level in levels]
    assert [number(row[0]) for row in gex] == [level["strike"] for level in levels]
    for row, level in zip(activity, levels, strict=True):
        for text, field in zip(row[1:], ("call_open_interest", "put_open_interest"), strict=False):
            if level[field] is None:
                assert text == "\N{EN DASH}", field
            else:  # format.js amount: whole numbers from 100, else two decimals
                assert abs(number(text) - level[field]) <= (0.5 if abs(level[field]) >= 100 else 0.005) + 1e-9, field
    gex_panel = page.locator("#gex-panel")
    for attribute, field in (
        ("data-flip", "gamma_flip"),
        ("data-call-wall", "call_wall"),
        ("data-put-wall", "put_wall"),
    ):
        value = gex_panel.get_attribute(attribute)
        assert (value == "") if expiry[field] is None else float(value) == expiry[field], field

    # Open interest and volume are one chart with a switch.
    page.click('#activity-panel button[data-value="volume_24h"]')
    expect(page.locator('#activity-panel button[data-value="volume_24h"]')).to_have_attribute("aria-pressed", "true")

    # The CSV has the raw numbers of the table.
    with page.expect_download() as download:
        page.click("#gex-panel .panel-csv")
    assert download.value.suggested_filename.startswith(f"BTC-{view['expiry']}-{view['settle']}-gamma-exposure-")
    exported = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert list(exported[0]) == ["strike", "call_gex", "put_gex", "net_gex"]
    assert len(exported) == len(levels)
    assert {float(row["strike"]) for row in exported} == {level["strike"] for level in levels}
    assert page.errors == []


def test_the_smile_marks_the_25_delta_points_and_the_atm_iv(live_stack: LiveStack, page: Any) -> None:
    view = open_analytics(page, live_stack)
    open_tables(page)
    path = f"/api/analytics/BTC/{view['expiry']}/?settle={view['settle']}"
    tables, expiry = shown_with_answer(page, live_stack, path)
    points = {row[1]: row for row in tables["#smile-panel-analytics"] if row[1]}
    for name, strike_field, iv_field in (
        ("25Δ put", "put_25d_strike", "put_25d_iv"),
        ("ATM", "forward", "atm_iv"),
        ("25Δ call", "call_25d_strike", "call_25d_iv"),
    ):
        if expiry[iv_field] is None:
            assert name not in points, name
            continue
        strike_text, _, iv_text, *_ = points[name]
        assert abs(number(strike_text) - expiry[strike_field]) <= 1e-6 * expiry[strike_field], name
        assert abs(number(iv_text) - expiry[iv_field] * 100) <= 0.005 + 1e-9, name
    assert "ATM" in points, expiry["missing"]
    listed = [row for row in tables["#smile-panel-analytics"] if not row[1]]
    assert len(listed) == len({level["strike"] for level in expiry["by_strike"]})
    assert page.errors == []


def test_it_updates_live_and_goes_back_to_the_chain(live_stack: LiveStack, page: Any) -> None:
    open_analytics(page, live_stack)
    first = int(page.eval_on_selector(VIEW, "view => view.dataset.ts"))
    page.wait_for_function(f"Number(document.querySelector('{VIEW}').dataset.ts) > {first}", timeout=10_000)

    # Another expiry: the by-strike panels wait for its analytics rather than show the last expiry's.
    third = page.locator("#expiries button").nth(2)
    expiry = third.get_attribute("data-expiry")
    third.click()
    expect(page.locator("#gex-panel .panel-subtitle")).to_contain_text(expiry)
    expect(page.locator("#gex-panel")).to_have_attribute("data-state", "shown", timeout=10_000)
    assert "view=analytics" in page.url
    assert f"expiry={expiry}" in page.url

    page.click('#mode button[data-mode="chain"]')
    expect(page.locator(VIEW)).to_be_hidden()
    expect(page.locator("#chain tbody tr").first).to_be_visible()
    assert page.evaluate("chainPage.chain.strikes.length") > 0
    assert page.errors == []


def test_it_fits_a_phone_one_chart_a_row(live_stack: LiveStack, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    try:
        open_analytics(page, live_stack)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the charts do not widen the page"
        boxes = [page.locator(panel).bounding_box() for panel in PANELS]
        for box in boxes:
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= 390
        assert [box["y"] for box in boxes] == sorted(box["y"] for box in boxes), "one below the other"
        assert boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"]
        screenshot(page, "analytics-view-phone")
    finally:
        context.close()
