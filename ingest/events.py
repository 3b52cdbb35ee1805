"""Messages the ingest sends to other processes, each defined once and built by one helper.

* Channel-layer events to the group ``chain.<ASSET>`` (``ingest.keys.chain_group``), which
  the live-chain consumer handles by their ``type`` (``chain.update`` → ``chain_update``):
  ``chain.update`` (rows of the contracts that changed since the previous flush),
  ``chain.instruments`` (contracts listed and delivered), ``chain.status`` (the feed's
  state changed).
* Commands to running feeds on the pub/sub channel ``ingest.keys.feed_control_channel``:
  ``feed.refresh`` (re-read the instruments now).
"""

from __future__ import annotations

import secrets
from typing import Literal, TypedDict

import orjson

from ingest.normalize import ContractRow
from optionsite.clock import now_ms

FeedState = Literal["connecting", "live", "stale", "stopped"]
FEED_STATES: tuple[FeedState, ...] = ("connecting", "live", "stale", "stopped")


class ChainUpdate(TypedDict):
    id: str
    type: Literal["chain.update"]
    asset: str
    rows: list[ContractRow]
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


class FeedRefresh(TypedDict):
    type: Literal["feed.refresh"]
    assets: list[str]


def _event_id() -> str:
    # Unique per event: the consumers of one process share, by this id, the work an event causes
    # (chain.live), however the channel layer delivers it to each of them.
    return secrets.token_hex(8)


def build_chain_update(*, asset: str, rows: list[ContractRow]) -> ChainUpdate:
    return {"id": _event_id(), "type": "chain.update", "asset": asset, "rows": rows, "ts": now_ms()}


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
