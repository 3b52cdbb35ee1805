"""The contract's own measures as columns of the chain page: hidden until chosen, then the row's values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LiveStack, screenshot
from tests.browser.test_chain_page import CHAIN_ROWS, open_chain

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MEASURE_COLUMNS = ("moneyness", "itm_probability", "spread", "iv_spread")
# The ATM strike's put and call, their rows as the page holds them and their measure cells' text, at one instant.
ATM_CELLS = """() => {
  const tr = document.querySelector("#chain tbody tr.atm");
  const side = (type) => {
    const row = chainPage.state.rows.get(tr.dataset[type]);
    const cells = {};
    for (const field of FIELDS) cells[field] = tr.querySelector(`td.${type}.f-${field}`).textContent;
    return { row, cells };
  };
  return { call: side("call"), put: side("put") };
}""".replace("FIELDS", orjson.dumps(MEASURE_COLUMNS).decode())


def test_the_contracts_measures_are_hidden_until_chosen_even_for_a_choice_saved_before_them(
    live_stack: LiveStack, page: Any
) -> None:
    open_chain(page, live_stack)
    for field in MEASURE_COLUMNS:
        expect(page.locator(f"#chain tbody tr.atm td.put.f-{field}")).to_be_hidden()
    # A choice saved before the page offered them (a bare list of hidden columns) keeps them hidden too.
    page.evaluate("localStorage.setItem('optionsite.chain.columns', JSON.stringify(['bid_size']))")
    page.reload()
    page.wait_for_selector(CHAIN_ROWS, timeout=20_000)
    expect(page.locator("#chain tbody tr.atm td.put.f-bid_size")).to_be_hidden()
    expect(page.locator("#chain tbody tr.atm td.put.f-gamma")).to_be_visible()
    expect(page.locator("#chain tbody tr.atm td.put.f-moneyness")).to_be_hidden()

    page.click("#columns summary")
    for field in MEASURE_COLUMNS:
        page.check(f'#columns-menu input[value="{field}"]')
    page.click("#columns summary")
    for field in MEASURE_COLUMNS:
        expect(page.locator(f"#chain tbody tr.atm td.call.f-{field}")).to_be_visible()
    expect(page.locator("#chain thead th.put.f-moneyness")).to_have_text("K/F")

    live_stack.simulator.stall(seconds=3)  # the exchange quiet: cells and rows at one instant
    page.wait_for_timeout(1500)
    atm = page.evaluate(ATM_CELLS)
    for side in ("call", "put"):
        row, cells = atm[side]["row"], atm[side]["cells"]
        assert cells["moneyness"] == f"{row['moneyness']:.3f}"
        assert cells["itm_probability"] == f"{row['itm_probability'] * 100:.1f} %"
        assert cells["iv_spread"] == ("\u2013" if row["iv_spread"] is None else f"{row['iv_spread'] * 100:.1f}")
    chances = atm["call"]["row"]["itm_probability"] + atm["put"]["row"]["itm_probability"]
    assert chances == pytest.approx(1.0, abs=1e-3)
    screenshot(page, "chain-contract-measures")

    page.reload()  # chosen, and remembered
    page.wait_for_selector(CHAIN_ROWS, timeout=20_000)
    expect(page.locator("#chain tbody tr.atm td.put.f-itm_probability")).to_be_visible()
    with page.expect_download() as download:
        page.click("#export")
    header = download.value.path().read_text().splitlines()[0].split(",")
    assert set(MEASURE_COLUMNS) <= set(header)
    assert page.errors == []
