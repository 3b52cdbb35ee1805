"""The expiry's analytics strip above the chain, in a real Chromium against a running stack.

The feed computes the analytics once a second, so what the strip shows is compared with the API's answer of the
same computation: the strip's ``data-ts`` is the frame's ``ts``, the API's ``computed_ts`` the same instant.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import orjson
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LiveStack, screenshot
from tests.browser.test_chain_page import open_chain

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STRIP = "#strip"
EN_DASH = "\N{EN DASH}"  # what a null shows (format.js EMPTY)
# Every figure the strip shows, as ``data-field`` names the ExpiryAnalytics field it holds.
FIELDS = (
    "ms_to_delivery",
    "forward",
    "basis_annualised",
    "atm_iv",
    "rr_25d",
    "bf_25d",
    "straddle",
    "straddle_of_forward",
    "implied_move",
    "implied_move_of_forward",
    "max_pain",
    "put_call_open_interest",
)

SHOWN = """strip => ({
  state: strip.dataset.state, expiry: strip.dataset.expiry, settle: strip.dataset.settle, ts: Number(strip.dataset.ts),
  cells: Object.fromEntries([...strip.querySelectorAll("dd[data-field]")].map(dd => [dd.dataset.field,
    {text: dd.textContent, value: dd.dataset.value === "" ? null : Number(dd.dataset.value), title: dd.title}])),
})"""


def api_analytics(live_stack: LiveStack, *, asset: str, expiry: str, settle: str) -> dict[str, Any]:
    url = f"{live_stack.base_url}/api/analytics/{asset}/{expiry}/?settle={settle}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())


def strip_and_api_of_one_computation(page: Any, live_stack: LiveStack, *, asset: str) -> tuple[dict, dict]:
    """What the strip shows and the API's answer for the same computation (a new one comes every second)."""
    deadline = time.monotonic() + 15
    while True:
        shown = page.eval_on_selector(STRIP, SHOWN)
        assert shown["state"] == "shown", shown
        answer = api_analytics(live_stack, asset=asset, expiry=shown["expiry"], settle=shown["settle"])
        if answer["computed_ts"] == shown["ts"]:
            return shown, answer["analytics"]
        assert time.monotonic() < deadline, f"the strip's ts {shown['ts']} never met the API's {answer['computed_ts']}"
        page.wait_for_timeout(150)


def number(text: str) -> float:
    return float(text.replace("\u2212", "-").replace(",", "").removesuffix(" %"))


def assert_strip_shows(shown: dict, analytics: dict) -> None:
    cells = shown["cells"]
    assert set(cells) == set(FIELDS)
    for field in FIELDS:
        assert cells[field]["value"] == analytics[field], field
        if analytics[field] is None:
            assert cells[field]["text"] == EN_DASH, field
            assert cells[field]["title"] == analytics["missing"][field], field
    # The two figures compared as read: the ATM IV in percent to one decimal, max pain as the chain's strikes.
    atm_iv, max_pain = analytics["atm_iv"], analytics["max_pain"]
    assert atm_iv is not None, analytics["missing"]
    assert max_pain is not None, analytics["missing"]
    assert cells["atm_iv"]["text"].endswith(" %")
    assert abs(number(cells["atm_iv"]["text"]) - atm_iv * 100) <= 0.05 + 1e-9
    assert cells["max_pain"]["text"] == (str(int(max_pain)) if max_pain.is_integer() else repr(max_pain))


def test_it_shows_the_atm_iv_and_max_pain_of_the_pages_expiry_as_the_api_serves_them(
    live_stack: LiveStack, page: Any
) -> None:
    open_chain(page, live_stack)
    expect(page.locator(STRIP)).to_have_attribute("data-state", "shown", timeout=10_000)
    view = page.evaluate("({expiry: chainPage.state.expiry, settle: chainPage.state.settle})")
    shown, analytics = strip_and_api_of_one_computation(page, live_stack, asset="BTC")
    assert (shown["expiry"], shown["settle"]) == (view["expiry"], view["settle"])
    assert_strip_shows(shown, analytics)
    expect(page.locator(".strip-title")).to_have_text(f"{view['expiry']} · {view['settle']}")
    screenshot(page, "analytics-strip-desktop")

    # Figures are written in place: the cells the strip built are the ones it still updates.
    page.evaluate("window.stripCell = document.querySelector('#strip dd[data-field=atm_iv]')")
    page.wait_for_function(f"document.querySelector('{STRIP}').dataset.ts > {shown['ts']}", timeout=10_000)
    assert page.evaluate("window.stripCell === document.querySelector('#strip dd[data-field=atm_iv]')")

    # On a short screen the chain scrolls inside its panel, below the strip; the page itself does not.
    page.set_viewport_size({"width": 1600, "height": 600})
    assert page.evaluate("document.documentElement.scrollHeight") <= 600
    assert page.errors == []


def test_it_changes_to_another_expirys_figures_after_switching_expiry(live_stack: LiveStack, page: Any) -> None:
    open_chain(page, live_stack)
    expect(page.locator(STRIP)).to_have_attribute("data-state", "shown", timeout=10_000)
    first, _ = strip_and_api_of_one_computation(page, live_stack, asset="BTC")

    third = page.locator("#expiries button").nth(2)
    expiry = third.get_attribute("data-expiry")
    third.click()
    expect(page.locator(STRIP)).to_have_attribute("data-expiry", expiry, timeout=10_000)
    expect(page.locator(STRIP)).to_have_attribute("data-state", "shown")
    shown, analytics = strip_and_api_of_one_computation(page, live_stack, asset="BTC")
    assert shown["expiry"] == expiry == page.evaluate("chainPage.state.expiry")
    assert_strip_shows(shown, analytics)
    assert shown["cells"]["ms_to_delivery"]["value"] > first["cells"]["ms_to_delivery"]["value"]
    assert shown["cells"]["ms_to_delivery"]["text"] != first["cells"]["ms_to_delivery"]["text"]
    assert page.errors == []


def test_a_null_figure_shows_a_dash_with_its_reason_as_the_tooltip(live_stack: LiveStack, page: Any) -> None:
    open_chain(page, live_stack)
    expect(page.locator(STRIP)).to_have_attribute("data-state", "shown", timeout=10_000)
    reason = "no 25-delta put in the chain: the furthest out-of-the-money put has delta -0.312"
    # A frame's expiry as the feed sends it, with a wing missing; the next real frame (within a second) repaints.
    cell = page.evaluate(
        """reason => {
          const view = chainPage.strip.view;
          chainPage.strip.show({expiry: view.expiry, settle: view.settle, ms_to_delivery: 86400000, rr_25d: null,
                                missing: {rr_25d: reason}}, Date.now());
          const dd = document.querySelector('#strip dd[data-field=rr_25d]');
          return {text: dd.textContent, title: dd.title, value: dd.dataset.value};
        }""",
        reason,
    )
    assert cell == {"text": EN_DASH, "title": reason, "value": ""}


def test_the_strip_waits_for_analytics_and_is_hidden_in_the_flat_view(live_stack: LiveStack, page: Any) -> None:
    # No analytics frame reaches the page's socket (dropped before live.js sees it): the strip says they are coming.
    page.add_init_script(
        """const Real = window.WebSocket;
        window.WebSocket = class extends Real {
          constructor(...args) {
            super(...args);
            this.addEventListener("message", (event) => {
              if (JSON.parse(event.data).type === "analytics") event.stopImmediatePropagation();
            });
          }
        };"""
    )
    open_chain(page, live_stack)
    expect(page.locator(STRIP)).to_have_attribute("data-state", "waiting")
    expect(page.locator(".strip-message")).to_have_text("Analytics appear within a second")
    expect(page.locator(".strip-figures")).to_be_hidden()

    page.click('#mode button[data-mode="flat"]')
    expect(page.locator(STRIP)).to_be_hidden()
    assert page.errors == []


def test_it_fits_a_phone_above_the_chain(live_stack: LiveStack, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    try:
        open_chain(page, live_stack)
        expect(page.locator(STRIP)).to_have_attribute("data-state", "shown", timeout=10_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the strip does not widen the page"
        strip = page.locator(STRIP).bounding_box()
        table = page.locator("#table-scroll").bounding_box()
        assert strip["x"] >= 0
        assert strip["x"] + strip["width"] <= 390
        assert strip["y"] + strip["height"] <= table["y"], "the strip is above the chain, not over it"
        screenshot(page, "analytics-strip-phone")
    finally:
        context.close()
