"""channels-redis' channel layer, without the receive buffers of departed consumers.

All the consumers of a process read their events from one Redis list; whichever of them holds the read
lock pops each message and puts it in the in-process buffer of the channel it is for
(``RedisChannelLayer.receive_buffer``, one queue per channel). A consumer that ends cancels its receive,
which deletes its buffer; but a message sent to its group before it left (``group_discard``) and popped
after that recreates the buffer, and nothing ever reads or deletes it again: the message stays in memory
for good, up to ``capacity`` of them per departed channel. With connections opened and dropped in rounds of
200 while whole-chain updates flowed, nearly every connection left one such buffer (1,087 after six
rounds), each holding the updates that were in flight when it left. Upstream: django/channels_redis#384
(open), #212.

Here the buffer of a channel that nobody has received on since its receive was cancelled, or since it left a
group, is deleted ``ABANDONED_AFTER`` seconds later: a consumer cancels its receive and leaves its groups as
it ends, and a receiver that cancels to come back (a timeout) does so at once. A buffer nobody has waited on
for ``expiry`` seconds for any other reason goes too: its messages are those the layer would have dropped in
Redis as expired. A consumer busy with an event is not receiving on its channel, but it has neither
cancelled nor left: its buffer stays. In use once ``CHANNEL_LAYERS`` names it as the backend.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels_redis.core import RedisChannelLayer

ABANDONED_AFTER = 5.0


class ChannelLayer(RedisChannelLayer):
    """``RedisChannelLayer`` that forgets the buffers of channels nobody receives on any more."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receivers: dict[str, int] = {}  # channel → receives in progress on it
        # channel → when its last receive ended (monotonic); kept ``expiry`` seconds, so that a buffer a late
        # message recreates for an abandoned channel is still known as abandoned, and goes too
        self._idle: dict[str, float] = {}
        # Channels whose receive was cancelled, or that left a group, since a receive on them last began.
        self._abandoned: set[str] = set()
        self._sweep_timer: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None

    async def receive(self, channel: str) -> Any:
        self._sweep_later(asyncio.get_running_loop())
        self._receivers[channel] = self._receivers.get(channel, 0) + 1
        self._idle.pop(channel, None)
        self._abandoned.discard(channel)
        try:
            return await super().receive(channel)
        except asyncio.CancelledError:
            self._abandoned.add(channel)
            raise
        finally:
            self._receivers[channel] -= 1
            if not self._receivers[channel]:
                del self._receivers[channel]
                self._idle[channel] = time.monotonic()

    async def group_discard(self, group: str, channel: str) -> None:
        await super().group_discard(group, channel)
        # A consumer leaves its groups as it ends, and its last receive may have ended normally just before
        # (channels finishes handling the message it got with the disconnect).
        if channel in self._receivers or channel in self._idle:
            self._abandoned.add(channel)

    def forget_departed_channels(self, *, now: float) -> None:
        """Delete the buffers of channels abandoned ``ABANDONED_AFTER`` seconds ago or idle for ``expiry``
        seconds."""
        for channel in list(self._idle.keys() | self.receive_buffer.keys()):
            if channel in self._receivers:
                continue
            # A buffer whose channel was never received on here is dated from the scan that first finds it.
            idle = now - self._idle.setdefault(channel, now)
            if idle >= (ABANDONED_AFTER if channel in self._abandoned else self.expiry):
                self.receive_buffer.pop(channel, None)
            if idle >= self.expiry:
                del self._idle[channel]
                self._abandoned.discard(channel)

    def _sweep_later(self, loop: asyncio.AbstractEventLoop) -> None:
        # A scan every ABANDONED_AFTER seconds while this loop has channels, from a timer rather than from
        # receive(), so that the buffers go also when no receive comes any more (the last connection left).
        if self._sweep_timer is not None and self._sweep_timer[0] is loop:
            return
        self._sweep_timer = (loop, loop.call_later(ABANDONED_AFTER, self._timed_sweep, loop))

    def _timed_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep_timer = None
        self.forget_departed_channels(now=time.monotonic())
        if self._receivers or self._idle or self.receive_buffer:
            self._sweep_later(loop)
