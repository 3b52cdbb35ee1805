"""The chain page in a real Chromium against a running stack (daphne + worker + beat + simulator).

Screenshots of each step are written to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import pytest
import redis
from playwright.sync_api import expect

from ingest.keys import chain_key, expiries_key
from ingest.supervision import request_refresh
from optionsite.redis_client import texts
from tests.browser.conftest import LiveStack, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHAIN_ROWS = "#chain tbody tr[data-strike]"


def open_chain(page: Any, live_stack: LiveStack, path: str = "/") -> None:
    page.goto(f"{live_stack.base_url}{path}")
    page.wait_for_selector(CHAIN_ROWS, timeout=20_000)
    expect(page.locator("#indicator")).to_have_attribute("data-state", "live", timeout=20_000)


def shown_symbols(page: Any) -> set[str]:
    return set(
        page.eval_on_selector_all(
            CHAIN_ROWS, "rows => rows.flatMap(tr => [tr.dataset.call, tr.dataset.put]).filter(Boolean)"
        )
    )


def test_it_shows_the_simulators_contracts_as_they_are_in_redis(
    live_stack: LiveStack, page: Any, redis_client: redis.Redis
) -> None:
    open_chain(page, live_stack)
    assert page.url.endswith("/chain/BTC/?expiry=" + page.evaluate("chainPage.state.expiry") + "&settle=USDT")
    expiry = page.evaluate("chainPage.state.expiry")
    listed = live_stack.simulator.live_symbols("BTC")
    assert shown_symbols(page) == {symbol for symbol in listed if f"-{expiry}-" in symbol and symbol.endswith("-USDT")}

    # Expiry tabs in delivery order, the nearest first.
    tabs = page.eval_on_selector_all("#expiries button", "buttons => buttons.map(b => b.dataset.expiry)")
    expiries = texts(redis_client.zrange(expiries_key("BTC"), 0, -1))
    assert tabs == expiries
    assert tabs[0] == expiry

    # With the exchange quiet for a moment, every field of every contract shown is the one in Redis.
    live_stack.simulator.stall(seconds=3)
    page.wait_for_timeout(1500)
    held = page.evaluate("Object.fromEntries(chainPage.state.rows)")
    stored = {row["symbol"]: row for row in map(orjson.loads, redis_client.hvals(chain_key("BTC")))}
    assert set(held) == shown_symbols(page)
    assert held == {symbol: stored[symbol] for symbol in held}
    screenshot(page, "chain-btc")
    assert page.errors == []


def test_a_price_cell_changes_without_a_reload(live_stack: LiveStack, page: Any) -> None:
    open_chain(page, live_stack)
    page.evaluate("window.loadedOnce = true")
    atm = page.locator("#chain tbody tr.atm")
    mark = atm.locator("td.call.f-mark_price")
    before = mark.text_content()
    page.wait_for_function(
        "before => document.querySelector('#chain tbody tr.atm td.call.f-mark_price').textContent !== before",
        arg=before,
        timeout=15_000,
    )
    assert page.evaluate("window.loadedOnce") is True, "the page was not reloaded"
    screenshot(page, "chain-cell-changed")
    assert page.errors == []


def test_switching_asset_and_expiry_shows_that_chain(live_stack: LiveStack, page: Any) -> None:
    open_chain(page, live_stack)
    page.click('.asset-tab[data-asset="ETH"]')
    page.wait_for_url(re.compile(r"/chain/ETH/"))
    page.wait_for_selector(CHAIN_ROWS, timeout=20_000)
    assert all(symbol.startswith("ETH-") for symbol in shown_symbols(page))
    expect(page.locator('.asset-tab[data-asset="ETH"]')).to_have_attribute("aria-current", "page")

    third = page.locator("#expiries button").nth(2)
    expiry = third.get_attribute("data-expiry")
    third.click()
    page.wait_for_function(
        "expiry => [...document.querySelectorAll('#chain tbody tr[data-strike]')]"
        ".every(tr => (tr.dataset.call || tr.dataset.put).includes('-' + expiry + '-'))",
        arg=expiry,
        timeout=10_000,
    )
    listed = live_stack.simulator.live_symbols("ETH")
    assert shown_symbols(page) == {symbol for symbol in listed if f"-{expiry}-" in symbol and symbol.endswith("-USDT")}
    expect(third).to_have_attribute("aria-pressed", "true")
    assert f"expiry={expiry}" in page.url
    screenshot(page, "chain-eth-third-expiry")
    assert page.errors == []


def test_the_indicator_shows_the_lag_and_reconnecting_then_live_when_the_simulator_drops_the_feed(
    live_stack: LiveStack, page: Any
) -> None:
    open_chain(page, live_stack)
    indicator, lag = page.locator("#indicator"), page.locator("#indicator .indicator-lag")
    # The feed's real median lag next to the state; p50 and p99 in the tooltip.
    expect(lag).to_have_text(re.compile(r"^· lag (\d+ ms|\d+\.\d s)$"))
    expect(indicator).to_have_attribute("title", re.compile(r"p50 \S+ m?s, p99 \S+ m?s"))
    screenshot(page, "indicator-live-lag")

    # The page re-reads the lag every 5 s. No real feed here falls 2 s behind, so the poll's answer
    # is made to: a p99 past FEED_STALE_AFTER is stale, with the p99 shown, until the figures recover.
    def lagging(route: Any) -> None:
        body = route.fetch().json()
        for tab in body["assets"]:
            if tab["symbol"] == "BTC":
                tab["lag_p99_ms"] = 16_200.0
        route.fulfill(json=body)

    page.route("**/chain/indexes.json", lagging)
    expect(indicator).to_have_attribute("data-state", "stale", timeout=12_000)
    expect(lag).to_have_text("· lag p99 16.2 s")
    screenshot(page, "indicator-stale-lag")
    page.unroute("**/chain/indexes.json")
    expect(indicator).to_have_attribute("data-state", "live", timeout=12_000)

    # Refused for 3 s, so that the feed's reconnection takes long enough to be seen.
    live_stack.simulator.refuse_connections(seconds=3)
    assert live_stack.simulator.drop_connections() >= 1
    expect(page.locator("#indicator")).to_have_attribute("data-state", "reconnecting", timeout=5_000)
    expect(page.locator("#indicator")).to_contain_text("Reconnecting")
    screenshot(page, "indicator-reconnecting")
    expect(page.locator("#indicator")).to_have_attribute("data-state", "live", timeout=30_000)
    screenshot(page, "indicator-live-again")
    assert page.errors == []


def test_the_indicator_turns_stale_within_seconds_when_the_data_stops_although_every_socket_stays_up(
    live_stack: LiveStack, page: Any
) -> None:
    """Before, the page and the feed said "Live" for 15 s of silence (FEED_STALE_AFTER, then 15 s)."""
    open_chain(page, live_stack)
    indicator = page.locator("#indicator")
    expect(indicator).to_have_attribute("data-state", "live", timeout=10_000)
    # Pings are still answered: no socket is rebuilt before FEED_SILENCE_TIMEOUT (10 s); only the data ages.
    live_stack.simulator.stall_pushes(seconds=8, connections=100)
    stalled_at = time.monotonic()
    expect(indicator).to_have_attribute("data-state", "stale", timeout=6_000)
    assert time.monotonic() - stalled_at < 5
    expect(indicator).to_have_attribute("title", re.compile(r"Newest data \S+ s old"))
    expect(page.locator("#indicator .indicator-lag")).to_have_text(re.compile(r"^· data \d+\.\d s old$"))
    screenshot(page, "indicator-stale-data")
    expect(indicator).to_have_attribute("data-state", "live", timeout=20_000)
    assert page.errors == []


def test_it_reconnects_with_a_fresh_snapshot_when_the_server_restarts(live_stack: LiveStack, page: Any) -> None:
    open_chain(page, live_stack)
    page.evaluate("window.loadedOnce = true")
    live_stack.stop("daphne")
    expect(page.locator("#indicator")).to_have_attribute("data-state", "reconnecting", timeout=5_000)
    screenshot(page, "server-restart-reconnecting")
    live_stack.start_daphne()
    expect(page.locator("#indicator")).to_have_attribute("data-state", "live", timeout=30_000)
    page.wait_for_selector(CHAIN_ROWS, timeout=5_000)
    assert page.evaluate("window.loadedOnce") is True
    # Chromium logs the refused reconnection attempts as errors; nothing else may fail.
    assert [error for error in page.errors if "WebSocket connection" not in error] == []


def test_the_flat_view_sorts_searches_and_exports_what_it_shows(live_stack: LiveStack, page: Any) -> None:
    open_chain(page, live_stack)
    page.click('#mode button[data-mode="flat"]')
    page.wait_for_selector("#flat tbody tr[data-symbol]", timeout=10_000)
    total = len(live_stack.simulator.live_symbols("BTC"))
    expect(page.locator("#flat tbody tr[data-symbol]")).to_have_count(total)

    page.click('#flat th[data-field="strike"]')
    page.click('#flat th[data-field="strike"]')
    expect(page.locator('#flat th[data-field="strike"]')).to_have_attribute("aria-sort", "descending")
    strikes = page.eval_on_selector_all(
        "#flat tbody tr", "rows => rows.map(tr => Number(tr.dataset.symbol.split('-')[2]))"
    )
    assert strikes == sorted(strikes, reverse=True)

    expiry = page.evaluate("chainPage.state.rows.values().next().value.expiry")
    page.fill("#search", f"{expiry} C USDT")
    shown = page.eval_on_selector_all("#flat tbody tr:not([hidden])", "rows => rows.map(tr => tr.dataset.symbol)")
    assert shown
    assert all(f"-{expiry}-" in symbol and "-C-" in symbol and symbol.endswith("USDT") for symbol in shown)
    screenshot(page, "flat-search")

    with page.expect_download() as download:
        page.click("#export")
    lines = download.value.path().read_text().splitlines()
    assert lines[0].startswith("symbol,expiry,strike,type,settle,")
    assert [line.split(",")[0] for line in lines[1:]] == shown
    assert page.errors == []


def test_the_column_chooser_is_remembered_and_the_filters_narrow_the_chain(live_stack: LiveStack, page: Any) -> None:
    open_chain(page, live_stack)
    page.click("#columns summary")
    page.check('#columns-menu input[value="gamma"]')
    page.uncheck('#columns-menu input[value="bid_size"]')
    page.reload()
    page.wait_for_selector(CHAIN_ROWS, timeout=20_000)
    expect(page.locator("#chain tbody tr.atm td.put.f-gamma")).to_be_visible()
    expect(page.locator("#chain tbody tr.atm td.put.f-bid_size")).to_be_hidden()

    page.select_option("#around", "5")
    expect(page.locator(f"{CHAIN_ROWS}:not([hidden])")).to_have_count(11)
    page.click('#sides button[data-sides="puts"]')
    expect(page.locator("#chain tbody tr.atm td.call.f-mark_price")).to_be_hidden()
    expect(page.locator("#chain tbody tr.atm td.put.f-mark_price")).to_be_visible()
    screenshot(page, "chain-puts-around-atm")
    assert page.errors == []


def test_it_is_usable_at_phone_width(live_stack: LiveStack, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    try:
        open_chain(page, live_stack)
        page.click('#sides button[data-sides="calls"]')
        page.wait_for_timeout(1500)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "only the table scrolls sideways, not the page"
        screenshot(page, "chain-phone")
    finally:
        context.close()


def test_a_delivery_moves_the_page_to_the_next_expiry(
    live_stack: LiveStack, page: Any, redis_client: redis.Redis
) -> None:
    """Last in this module: the simulated clock jumps a day."""
    open_chain(page, live_stack)
    delivered_expiry = page.evaluate("chainPage.state.expiry")
    tabs_before = page.eval_on_selector_all("#expiries button", "buttons => buttons.map(b => b.dataset.expiry)")

    report = live_stack.simulator.advance_to_next_delivery()
    assert report
    request_refresh(client=redis_client, assets=["BTC"])

    expect(page.locator(f'#expiries button[data-expiry="{delivered_expiry}"]')).to_have_count(0, timeout=15_000)
    expect(page.locator('#expiries button[aria-pressed="true"]')).to_have_attribute("data-expiry", tabs_before[1])
    page.wait_for_function(
        "expiry => document.querySelectorAll('#chain tbody tr[data-strike]').length > 0 && [...document"
        ".querySelectorAll('#chain tbody tr[data-strike]')].every(tr => (tr.dataset.call || tr.dataset.put)"
        ".includes('-' + expiry + '-'))",
        arg=tabs_before[1],
        timeout=10_000,
    )
    screenshot(page, "chain-after-delivery")
    assert page.errors == []


def test_a_crossed_book_is_marked_on_its_bid_and_ask_and_unmarked_when_it_uncrosses(
    live_stack: LiveStack, page: Any
) -> None:
    open_chain(page, live_stack)
    # A row as the feed sends it, crossed; the simulator never crosses its books, so the update is made here.
    marks = page.evaluate(
        """() => {
          const [symbol, contract] = [...chainPage.chain.contracts].find(([, c]) => c.row.ask_price != null);
          const cells = contract.cells;
          const marked = (td) => td.classList.contains("crossed") && td.title;
          const mark = () => [cells.bid_price, cells.ask_price].map(marked);
          const row = contract.row;
          chainPage.chain.update({ ...row, bid_price: row.ask_price + 5, crossed: true });
          const crossed = mark();
          chainPage.chain.update({ ...row, crossed: false });
          return { symbol, crossed, uncrossed: mark() };
        }"""
    )
    assert marks["crossed"] == ["Crossed book: the bid is above the ask"] * 2, marks
    assert marks["uncrossed"] == [False, False]
    page.evaluate(
        """(symbol) => {
          const row = chainPage.chain.contracts.get(symbol).row;
          chainPage.chain.update({ ...row, bid_price: row.ask_price + 5, crossed: true });
        }""",
        marks["symbol"],
    )
    screenshot(page, "chain-crossed-book")
    assert page.errors == []
