"""The Redis layout: a public interface, documented in docs/redis.md.

Every key starts with ``settings.REDIS_KEY_PREFIX`` (``optionsite:`` by default). Assets
are upper-case base coins (``BTC``), expiries Bybit codes (``26DEC25``).
"""

from __future__ import annotations

from collections.abc import Container

from optionsite.redis_client import redis_key


def contract_key(symbol: str) -> str:
    """HASH: one contract's latest ticker, field by field (``HGETALL``/``HMGET``)."""
    return redis_key("option", symbol)


def chain_key(asset: str) -> str:
    """HASH: symbol → the contract's row as JSON; the whole chain in one ``HVALS``."""
    return redis_key("chain", asset)


def chain_revision_key(asset: str) -> str:
    """STRING: a random token, replaced in the same pipeline as every change to the chain hash.

    Readers that keep a decoded chain in memory re-read ``HVALS`` only when it moved.
    """
    return redis_key("chain-revision", asset)


def contracts_key(asset: str) -> str:
    """SET: the symbols of the asset's listed contracts."""
    return redis_key("contracts", asset)


def expiries_key(asset: str) -> str:
    """ZSET: expiry code scored by delivery time (epoch ms), i.e. in chronological order."""
    return redis_key("expiries", asset)


def strikes_key(asset: str, expiry: str) -> str:
    """ZSET: strike (as text) scored by its value, for one expiry."""
    return redis_key("strikes", asset, expiry)


def analytics_key(asset: str) -> str:
    """HASH: the asset's latest analytics as JSON (docs/analytics.md): field ``asset`` the whole asset's
    (``AssetAnalytics``), field ``<EXPIRY>/<SETTLE>`` (``26DEC25/USDT``) one expiry's with its by-strike series,
    field ``ts`` when they were computed (epoch ms)."""
    return redis_key("analytics", asset)


ANALYTICS_ASSET_FIELD = "asset"
ANALYTICS_TS_FIELD = "ts"


def analytics_expiry_field(expiry: str, settle: str) -> str:
    return f"{expiry}/{settle}"


def chosen_analytics_field(expiry: str, settle: str | None, *, stored: Container[str]) -> str:
    """The field of ``expiry``'s analytics for ``settle``; for both coins (``None``), USDT's when ``stored`` holds
    it, else USDC's: the settle coin the API's chain table defaults to."""
    if settle is not None:
        return analytics_expiry_field(expiry, settle)
    usdt = analytics_expiry_field(expiry, "USDT")
    return usdt if usdt in stored else analytics_expiry_field(expiry, "USDC")


def feed_status_key(asset: str) -> str:
    """HASH: the asset's feed status (state, connections, message rate, ...)."""
    return redis_key("feed", asset)


def feed_lease_key(asset: str) -> str:
    """STRING with a TTL: the token of the one worker running the asset's feed."""
    return redis_key("lease", asset)


def feed_dispatch_key(asset: str) -> str:
    """STRING with a TTL: a feed task was queued recently; do not queue another yet."""
    return redis_key("dispatch", asset)


def feed_workers_key() -> str:
    """ZSET: Celery node name of each worker process consuming ``feeds`` → its last heartbeat (epoch ms)."""
    return redis_key("feed-workers")


def dispatch_round_key() -> str:
    """STRING with a TTL: the node that ran the latest dispatch round; while it exists no other round starts."""
    return redis_key("dispatch-round")


def tracked_assets_key() -> str:
    """SET: assets that have data in Redis, so that leftovers can be found without a scan."""
    return redis_key("assets", "tracked")


def feed_control_channel() -> str:
    """Pub/sub channel for commands to running feeds (see ``ingest.events``)."""
    return redis_key("feed", "control")


def chain_group(asset: str) -> str:
    """The Channels group that receives the asset's live updates."""
    return f"chain.{asset}"
