"""The "assets changed" event: how a running feed learns that the asset set changed.

Published on the Redis channel ``<prefix>assets:changed`` after the change is committed,
together with an increment of the counter ``<prefix>assets:version`` so that a process
that missed a message (pub/sub keeps nothing) can still notice by polling the counter.
The event says what changed; a listener re-reads the enabled assets from the database.
"""

from __future__ import annotations

import logging
import time
from typing import Literal, TypedDict

import orjson
import redis
from django.db import transaction

from optionsite.redis_client import redis_connection, redis_key

logger = logging.getLogger(__name__)

AssetsChangedAction = Literal["created", "updated", "deleted"]
ACTIONS: tuple[AssetsChangedAction, ...] = ("created", "updated", "deleted")


class AssetsChanged(TypedDict):
    type: Literal["assets.changed"]
    version: int
    action: AssetsChangedAction
    symbols: list[str]
    ts: int


def assets_changed_channel() -> str:
    return redis_key("assets", "changed")


def assets_version_key() -> str:
    return redis_key("assets", "version")


def build_assets_changed(*, version: int, action: AssetsChangedAction, symbols: list[str]) -> AssetsChanged:
    return {
        "type": "assets.changed",
        "version": version,
        "action": action,
        "symbols": sorted(symbols),
        "ts": int(time.time() * 1000),
    }


def parse_assets_changed(raw: bytes | str) -> AssetsChanged:
    """Decode an event read from the channel; ``ValueError`` if it is not one."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"assets.changed event is not JSON: {exc}") from None
    if not isinstance(event, dict) or event.get("type") != "assets.changed":
        raise ValueError("not an assets.changed event")
    if event.get("action") not in ACTIONS or not isinstance(event.get("symbols"), list):
        raise ValueError("assets.changed event lacks a valid action or symbols")
    return event  # type: ignore[return-value]


def publish_assets_changed(*, action: AssetsChangedAction, symbols: list[str]) -> AssetsChanged | None:
    """Bump the version counter and publish the event; ``None`` if Redis is unreachable."""
    client = redis_connection()
    try:
        version = int(client.incr(assets_version_key()))
        event = build_assets_changed(version=version, action=action, symbols=symbols)
        client.publish(assets_changed_channel(), orjson.dumps(event))
    except redis.RedisError as exc:
        # The change itself is committed; the feed's periodic reconcile will pick it up.
        logger.warning("could not publish assets.changed (%s): %s", ",".join(symbols), exc)
        return None
    logger.info("assets.changed %s %s (version %d)", action, ",".join(event["symbols"]), version)
    return event


def announce_assets_changed(*, action: AssetsChangedAction, symbols: list[str]) -> None:
    """Publish the event once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: publish_assets_changed(action=action, symbols=symbols))
