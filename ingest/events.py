"""Messages the ingest sends to other processes, each defined once and built by one helper.

* Channel-layer events to the group ``chain.<ASSET>`` (``ingest.keys.chain_group``), which
  the live-chain consumer handles by their ``type`` (``chain.update`` → ``chain_update``):
  ``chain.update`` (rows of the contracts that changed since the previous flush, as JSON),
  ``chain.instruments`` (contracts listed and delivered), ``chain.status`` (the feed's
  state changed), ``chain.analytics`` (new analytics, at most once a second: ``analytics.publisher``).
* Commands to running feeds on the pub/sub channel ``ingest.keys.feed_control_channel``:
  ``feed.refresh`` (re-read the instruments now).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Literal, TypedDict

import orjson

from ingest.normalize import ContractRow
from ingest.symbols import SettleCoin
from optionsite.clock import now_ms

FeedState = Literal["connecting", "live", "stale", "stopped"]
FEED_STATES: tuple[FeedState, ...] = ("connecting", "live", "stale", "stopped")


# A row of a ``chain.update``: the contract's expiry and settle coin, which a view selects rows by, and the row
# as the JSON the chain's hash holds. The flusher writes that JSON once, for Redis, and every web process sends it
# on as it is: no process decodes a changed row, nor encodes it again per view or per client. On the wire
# (channels-redis' msgpack) the tuple arrives as a list: unpack it.
ChangedRow = tuple[str, SettleCoin, bytes]


class ChainUpdate(TypedDict):
    id: str
    type: Literal["chain.update"]
    asset: str
    rows: list[ChangedRow]
    ts: int


class ChainInstruments(TypedDict):
    id: str
    type: Literal["chain.instruments"]
    asset: str
    listed: list[ContractRow]
    delivered: list[str]
    ts: int


class ChainStatus(TypedDict):
    id: str
    type: Literal["chain.status"]
    asset: str
    state: FeedState
    ts: int


class ChainAnalytics(TypedDict):
    id: str
    type: Literal["chain.analytics"]
    asset: str
    # The asset's analytics and each expiry's (by ``<EXPIRY>/<SETTLE>``), as the JSON the feed stored in Redis
    # (``ingest.keys.analytics_key``); sent on as it is.
    analytics: bytes
    expiries: dict[str, bytes]
    ts: int


class FeedRefresh(TypedDict):
    type: Literal["feed.refresh"]
    assets: list[str]


def _event_id() -> str:
    # Unique per event: the consumers of one process share, by this id, the work an event causes
    # (chain.live_chain, chain.updates), however the channel layer delivers it to each of them.
    return secrets.token_hex(8)


def build_chain_update(
    *, asset: str, rows: Sequence[ContractRow], rows_json: Sequence[bytes] | None = None
) -> ChainUpdate:
    """``rows_json``: the rows as JSON, when the sender wrote them already (the flusher, for Redis)."""
    if rows_json is None:
        rows_json = [orjson.dumps(row) for row in rows]
    changed: list[ChangedRow] = [
        (row["expiry"], row["settle"], row_json) for row, row_json in zip(rows, rows_json, strict=True)
    ]
    return {"id": _event_id(), "type": "chain.update", "asset": asset, "rows": changed, "ts": now_ms()}


def build_chain_instruments(*, asset: str, listed: list[ContractRow], delivered: list[str]) -> ChainInstruments:
    return {
        "id": _event_id(),
        "type": "chain.instruments",
        "asset": asset,
        "listed": listed,
        "delivered": delivered,
        "ts": now_ms(),
    }


def build_chain_status(*, asset: str, state: FeedState) -> ChainStatus:
    return {"id": _event_id(), "type": "chain.status", "asset": asset, "state": state, "ts": now_ms()}


def build_chain_analytics(
    *, asset: str, analytics_json: bytes, expiries_json: dict[str, bytes], ts: int
) -> ChainAnalytics:
    """``ts``: when the analytics were computed (their ``now_ms``)."""
    return {
        "id": _event_id(),
        "type": "chain.analytics",
        "asset": asset,
        "analytics": analytics_json,
        "expiries": expiries_json,
        "ts": ts,
    }


def build_feed_refresh(*, assets: list[str]) -> FeedRefresh:
    return {"type": "feed.refresh", "assets": sorted(assets)}


def parse_feed_command(raw: bytes | str) -> FeedRefresh:
    """Decode a command read from the control channel; ``ValueError`` if it is not one."""
    try:
        command = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"feed command is not JSON: {exc}") from None
    if not isinstance(command, dict) or command.get("type") != "feed.refresh":
        raise ValueError("not a feed command")
    if not isinstance(command.get("assets"), list):
        raise ValueError("feed.refresh lacks its assets")
    return command  # type: ignore[return-value]
