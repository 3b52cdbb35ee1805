"""Chains in Redis for the API's tests and benchmark, written by the ingest's own path.

The contracts are Bybit's real listing of 2025-09-01 (BTC 778, ETH 822, SOL 378, USDT and
USDC forms), moved a whole number of years into the future so that times to expiry are
real; the quotes are Black-76 prices, greeks and a volatility smile, sent through
``ingest.normalize.apply_ticker`` as Bybit's WebSocket would send them (text fields, "0"
for "no bid"), and written with ``ingest.store``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import redis

from ingest.normalize import ContractRow, apply_ticker, static_row
from ingest.status import FeedStatus
from ingest.store import sync_instruments, write_feed_status, write_rows
from ingest.symbols import OptionContract, format_symbol, parse_symbol

REAL_SYMBOLS_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "bybit-option-symbols-2025-09-01.txt"
LISTING_YEAR = 2025
INDEX_PRICES = {"BTC": 110_000.0, "ETH": 4_400.0, "SOL": 200.0}
BASE_VOLATILITY = {"BTC": 0.42, "ETH": 0.62, "SOL": 0.78}
_SECONDS_PER_YEAR = 365 * 24 * 3600


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def real_contracts(asset: str, *, limit_expiries: int | None = None) -> list[OptionContract]:
    """The asset's contracts from the real listing, every expiry moved to a year after this one.

    ``limit_expiries`` keeps only that many of the nearest expiries (smaller chains for fast tests).
    """
    years_later = datetime.now(UTC).year + 1 - LISTING_YEAR
    contracts = []
    for line in REAL_SYMBOLS_FILE.read_text().split():
        if not line.startswith(f"{asset}-"):
            continue
        listed = parse_symbol(line)
        moved = format_symbol(
            base=listed.base,
            expiry=listed.expiry.date().replace(year=listed.expiry.year + years_later),
            strike=listed.strike,
            option_type=listed.option_type,
            settle=listed.settle,
        )
        contracts.append(parse_symbol(moved))
    if limit_expiries is not None:
        kept = sorted({contract.expiry for contract in contracts})[:limit_expiries]
        contracts = [contract for contract in contracts if contract.expiry in kept]
    return contracts


def _cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _pdf(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def bybit_ticker(contract: OptionContract, *, index_price: float, now: int, rng: random.Random) -> dict[str, str]:
    """A ``tickers.<symbol>`` snapshot as Bybit's WebSocket sends it: every value text."""
    years = max(contract.expiry.timestamp() * 1000 - now, 3_600_000) / 1000 / _SECONDS_PER_YEAR
    forward = index_price * math.exp(0.05 * years)
    strike = float(contract.strike)
    moneyness = math.log(strike / forward)
    base = BASE_VOLATILITY.get(contract.base, 0.6)
    sigma = base * (1 + 0.9 * moneyness * moneyness) + (0.08 * -moneyness if moneyness < 0 else 0.0)
    root = sigma * math.sqrt(years)
    d1 = (-moneyness + root * root / 2) / root
    d2 = d1 - root
    if contract.option_type == "call":
        price, delta = forward * _cdf(d1) - strike * _cdf(d2), _cdf(d1)
    else:
        price, delta = strike * _cdf(-d2) - forward * _cdf(-d1), _cdf(d1) - 1
    tick = 0.1 if index_price < 1000 else 5.0
    mark = max(round(price / tick) * tick, tick)
    spread = rng.uniform(0.01, 0.06)
    # Far from the money nobody bids; now and then nobody offers either, or nothing traded yet.
    has_bid = mark > 3 * tick and rng.random() > 0.05
    has_ask = rng.random() > 0.03
    volume = round(rng.lognormvariate(1, 1.2), 2) if rng.random() > 0.3 else 0.0
    return {
        "symbol": contract.symbol,
        "bidPrice": f"{max(mark * (1 - spread), tick):.1f}" if has_bid else "0",
        "bidSize": f"{rng.uniform(0.1, 50):.2f}" if has_bid else "0",
        "bidIv": f"{sigma - spread / 2:.4f}" if has_bid else "0",
        "askPrice": f"{mark * (1 + spread):.1f}" if has_ask else "0",
        "askSize": f"{rng.uniform(0.1, 50):.2f}" if has_ask else "0",
        "askIv": f"{sigma + spread / 2:.4f}" if has_ask else "0",
        "lastPrice": f"{mark * rng.uniform(0.95, 1.05):.1f}" if rng.random() > 0.25 else "0",
        "markPrice": f"{mark:.2f}",
        "markPriceIv": f"{sigma:.4f}",
        "indexPrice": f"{index_price:.2f}",
        "underlyingPrice": f"{forward:.2f}",
        "delta": f"{delta:.8f}",
        "gamma": f"{_pdf(d1) / (forward * root):.8f}",
        "theta": f"{-forward * _pdf(d1) * sigma / (2 * math.sqrt(years)) / 365:.8f}",
        "vega": f"{forward * _pdf(d1) * math.sqrt(years) / 100:.8f}",
        "openInterest": f"{rng.lognormvariate(2, 1.5) * math.exp(-4 * moneyness * moneyness):.2f}",
        "volume24h": f"{volume:.2f}",
        "turnover24h": f"{volume * index_price:.2f}",
        "totalVolume": f"{volume * rng.uniform(5, 50):.0f}",
        "totalTurnover": f"{volume * index_price * rng.uniform(5, 50):.0f}",
        "highPrice24h": f"{mark * 1.1:.1f}",
        "lowPrice24h": f"{mark * 0.9:.1f}",
        "change24h": f"{rng.uniform(-0.2, 0.2):.4f}",
        "predictedDeliveryPrice": "0",
    }


def quoted_rows(
    contracts: Iterable[OptionContract], *, index_price: float, now: int, seed: int = 1
) -> list[ContractRow]:
    """Each contract's row after one ticker, through the ingest's own normalisation."""
    rng = random.Random(seed)
    rows = []
    for contract in contracts:
        ts = now - rng.randint(0, 3000)
        ticker = bybit_ticker(contract, index_price=index_price, now=now, rng=rng)
        rows.append(apply_ticker(static_row(contract), ticker, ts=ts, received_ts=ts + rng.randint(5, 60)))
    return rows


def fill_chain(
    client: redis.Redis,
    *,
    asset: str,
    contracts: list[OptionContract],
    quoted: bool = True,
    seed: int = 1,
) -> list[ContractRow]:
    """List ``contracts`` for ``asset`` and (unless ``quoted=False``) give each one a quote; returns the rows."""
    sync_instruments(client, asset=asset, contracts=contracts)
    if not quoted:
        return [static_row(contract) for contract in contracts]
    rows = quoted_rows(contracts, index_price=INDEX_PRICES.get(asset, 100.0), now=now_ms(), seed=seed)
    pipe = client.pipeline(transaction=False)
    write_rows(pipe, asset=asset, rows=rows)
    pipe.execute()
    return rows


def write_status(
    client: redis.Redis, *, asset: str, last_message_age: float = 0.2, data_age: float = 0.3, **changes: object
) -> FeedStatus:
    """A feed status as a running feed writes it, live unless ``changes`` say otherwise; ``data_age`` (s) gives
    its ``data_ts``."""
    now = now_ms()
    status = FeedStatus(
        asset=asset,
        state="live",
        worker="tests",
        connections=1,
        connections_wanted=1,
        subscribed=100,
        instruments=100,
        last_message_ts=now - int(last_message_age * 1000),
        data_ts=now - int(data_age * 1000),
        messages_per_second=120.5,
        messages_total=12_345,
        reconnects=2,
        rejected_frames=1,
        lag_p50_ms=182.0,
        lag_p99_ms=431.0,
        index_price=INDEX_PRICES.get(asset, 100.0),
        started_ts=now - 60_000,
        updated_ts=now,
    )
    for name, value in changes.items():
        setattr(status, name, value)
    pipe = client.pipeline(transaction=False)
    write_feed_status(pipe, asset=asset, status=status.to_redis())
    pipe.execute()
    return status
