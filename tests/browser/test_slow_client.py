"""A client that stops reading, against the real daphne of the running stack (no browser needed)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import orjson
import pytest

from chain.flow_control import MAX_UNACKED_MESSAGES
from tests.browser.conftest import LiveStack

pytestmark = pytest.mark.slow


def test_a_stalled_client_is_sent_a_bounded_amount_and_then_a_snapshot(live_stack: LiveStack) -> None:
    # Its own event loop, in a thread: Playwright's sync API keeps one running on the main thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, stalled_and_healthy_clients(live_stack)).result(timeout=120)


async def stalled_and_healthy_clients(live_stack: LiveStack) -> None:
    ws_url = live_stack.base_url.replace("http://", "ws://") + "/ws/chain/BTC/"
    async with aiohttp.ClientSession() as session:
        stalled = await session.ws_connect(ws_url, origin=live_stack.base_url, max_msg_size=0)
        healthy = await session.ws_connect(ws_url, origin=live_stack.base_url, max_msg_size=0)

        # The healthy client reads and acknowledges for 6 s (24 flushes) while the stalled one reads nothing.
        delays: list[float] = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            frame = orjson.loads((await healthy.receive(timeout=5)).data)
            if frame["type"] == "update":
                now = time.time() * 1000
                delays.extend(now - row["ts"] for row in frame["rows"])
            await healthy.send_str(orjson.dumps({"type": "ack", "seq": frame["seq"]}).decode())
        assert len(delays) > 100
        assert max(delays) < 3000, "the healthy client is served on time meanwhile"

        # What daphne sent the stalled client: its snapshot and at most 7 more messages, not 24 flushes.
        frames = []
        while True:
            try:
                message = await stalled.receive(timeout=1)
            except TimeoutError:
                break
            frames.append(orjson.loads(message.data))
        assert frames[0]["type"] == "snapshot"
        messages = [frame for frame in frames if frame.get("part", 1) == 1]  # a snapshot in parts is one
        assert len(messages) <= MAX_UNACKED_MESSAGES

        # Acknowledging brings the chain as it is now.
        await stalled.send_str(orjson.dumps({"type": "ack", "seq": frames[-1]["seq"]}).decode())
        snapshot = orjson.loads((await stalled.receive(timeout=5)).data)
        assert (snapshot["type"], snapshot["reason"]) == ("snapshot", "resync")
        newest = max(row["ts"] or 0 for row in snapshot["rows"])
        assert time.time() * 1000 - newest < 3000
        await asyncio.gather(stalled.close(), healthy.close())
