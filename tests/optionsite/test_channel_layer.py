"""The project's channel layer (``CHANNEL_LAYERS``) on the test Redis: what it keeps for channels whose
consumer has gone (optionsite/channel_layer.py)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from channels.layers import get_channel_layer

from optionsite import channel_layer

SWEEP = 0.2


@pytest.fixture
def quick_sweeps(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The configured layer, forgetting an abandoned channel after 0.2 s instead of 5 s."""
    monkeypatch.setattr(channel_layer, "ABANDONED_AFTER", SWEEP)
    return get_channel_layer()


async def received(layer: Any, channel: str) -> dict[str, Any]:
    return await asyncio.wait_for(layer.receive(channel), timeout=5)


async def test_it_forgets_what_reached_a_channel_after_its_consumer_left(quick_sweeps: Any) -> None:
    layer = quick_sweeps
    group = f"test-{secrets.token_hex(4)}"
    departed, staying = await layer.new_channel(), await layer.new_channel()
    for channel in (departed, staying):
        await layer.group_add(group, channel)
    waits = {channel: asyncio.ensure_future(layer.receive(channel)) for channel in (departed, staying)}
    await asyncio.sleep(0.1)

    # The departed consumer stops receiving, and an update sent to the group before it left reaches the
    # process after that: the staying one's receive puts the departed one's copy in a buffer of its own.
    waits[departed].cancel()
    await asyncio.gather(waits[departed], return_exceptions=True)
    await layer.group_send(group, {"type": "chain.update", "rows": ["a whole chain"]})
    assert (await asyncio.wait_for(waits[staying], timeout=5))["rows"] == ["a whole chain"]
    assert departed in layer.receive_buffer
    await layer.group_discard(group, departed)

    # The staying consumer goes on receiving; the departed one's buffer is gone within two sweeps.
    waits[staying] = asyncio.ensure_future(layer.receive(staying))
    await asyncio.sleep(3 * SWEEP)
    assert departed not in layer.receive_buffer
    waits[staying].cancel()
    await asyncio.gather(waits[staying], return_exceptions=True)
    await layer.group_discard(group, staying)


async def test_it_keeps_what_waits_for_a_consumer_busy_with_a_message(quick_sweeps: Any) -> None:
    layer = quick_sweeps
    group = f"test-{secrets.token_hex(4)}"
    busy, other = await layer.new_channel(), await layer.new_channel()
    for channel in (busy, other):
        await layer.group_add(group, channel)
    await layer.group_send(group, {"type": "chain.update", "rows": [1]})
    assert (await received(layer, busy))["rows"] == [1]

    # While the busy consumer handles that message, the next one reaches the process through the other's
    # receive and waits in the busy one's buffer, longer than an abandoned channel's would be kept.
    await layer.group_send(group, {"type": "chain.update", "rows": [2]})
    assert (await received(layer, other))["rows"] == [1]
    assert (await received(layer, other))["rows"] == [2]
    waiting = asyncio.ensure_future(layer.receive(other))
    await asyncio.sleep(3 * SWEEP)
    assert (await received(layer, busy))["rows"] == [2]
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    for channel in (busy, other):
        await layer.group_discard(group, channel)
