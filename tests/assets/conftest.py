from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from assets.events import AssetsChanged, assets_changed_channel, parse_assets_changed


class EventListener:
    """Collects assets.changed events from the real Redis channel."""

    def __init__(self, client: redis.Redis) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(assets_changed_channel())
        # Wait for the subscription to be confirmed so no event is missed.
        self.pubsub.get_message(timeout=2, ignore_subscribe_messages=False)

    def events(self, settle: float = 0.3) -> list[AssetsChanged]:
        """Every event published so far, waiting ``settle`` seconds for stragglers."""
        received: list[AssetsChanged] = []
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.05)
            if message is not None:
                received.append(parse_assets_changed(message["data"]))
        return received

    def close(self) -> None:
        self.pubsub.close()


@pytest.fixture
def assets_events(redis_client: redis.Redis) -> Iterator[EventListener]:
    listener = EventListener(redis_client)
    yield listener
    listener.close()
