"""What the chain page shows around the chain: the enabled assets' tabs with their feeds' state, and an asset's
expiries (synchronous: the page's views run in threads).
"""

from __future__ import annotations

from dataclasses import dataclass

from assets.models import Asset
from chain.live_chain import feed_info
from ingest.events import FeedState
from ingest.keys import expiries_key, feed_status_key
from ingest.status import FeedStatus
from optionsite.redis_client import redis_connection


@dataclass(frozen=True)
class AssetTab:
    """An enabled asset as the page's tabs show it, with its feed's lag for the page's indicator
    (the page reads these every few seconds; the WebSocket sends the lag only in snapshots)."""

    symbol: str
    label: str
    index_price: float | None
    state: FeedState | None
    lag_p50_ms: float | None
    lag_p99_ms: float | None


def asset_tabs() -> list[AssetTab]:
    """The enabled assets in display order, each with its feed's index price, state and lag (one Redis round-trip)."""
    assets = list(Asset.objects.enabled())
    pipe = redis_connection().pipeline(transaction=False)
    for asset in assets:
        pipe.hgetall(feed_status_key(asset.symbol))
    tabs = []
    for asset, raw in zip(assets, pipe.execute() if assets else [], strict=True):
        feed = feed_info(FeedStatus.from_redis(asset.symbol, raw))
        tabs.append(
            AssetTab(
                asset.symbol, asset.label, feed["index_price"], feed["state"], feed["lag_p50_ms"], feed["lag_p99_ms"]
            )
        )
    return tabs


def listed_expiries(*, asset: str) -> list[dict[str, str | int]]:
    """The asset's expiries in delivery order, for the page to open on the nearest one."""
    raw: list[tuple[bytes, float]] = redis_connection().zrange(expiries_key(asset), 0, -1, withscores=True)  # type: ignore[assignment]
    return [{"expiry": code.decode(), "delivery_ms": int(score)} for code, score in raw]
