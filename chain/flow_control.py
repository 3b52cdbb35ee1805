"""Each live-chain connection's flow control: frame numbers, what the client has not acknowledged, and when it
needs a fresh snapshot instead of the events it missed (docs/websocket.md, "Falling behind").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from chain.messages import BadMessage

# A connection may have this many messages (a snapshot or an update, however many frames it takes) sent and
# not acknowledged yet: beyond that the client is not keeping up, by its own word. It gets nothing more until it
# acknowledges, and then one fresh snapshot instead of the backlog. With the ingest's 4 flushes a second that is
# about two seconds of updates.
MAX_UNACKED_MESSAGES = 8
# And, whatever it acknowledges, a connection may have this many bytes waiting in the server's write buffer
# (sent by the consumer, not yet taken by the socket) before it gets nothing more; one message goes whenever the
# buffer is below this, however large the message. A whole chain of 1,500 contracts is ~1.4 MB of JSON (~930
# bytes a row), so a client whose link carries the stream is not cut off by one snapshot; what a client that
# stops reading can make the server hold is this plus one message (docs/websocket.md, "Falling behind").
MAX_BUFFERED_BYTES = 2 * 1024 * 1024

# An event handled this much later (ms) than the quickest of the connection's recent events waited
# in a queue: this connection (or the whole process) is behind, and the channel layer may already
# have dropped events for it (it drops when a channel holds 200). Measured against recent events, not
# against zero, so that a clock offset between the ingest's machine and this one does not count.
LATE_AFTER_MS = 2000
RECENT_EVENTS = 32


Admission = Literal["forward", "skip", "resync"]


@dataclass
class Delivery:
    """One connection's flow control: frame numbers, what the client has not acknowledged yet, and
    whether it needs a fresh snapshot because it (or this process) fell behind.

    A slow reader is found out two ways: by its acknowledgements (the client's word, which a client may give
    without reading) and by what the server still holds for its socket (``buffered_bytes``, counted by the
    server: ``optionsite.write_buffer``). A consumer that is itself behind is found out by the age of the
    events it handles. Either way the connection skips events and gets one snapshot when it can take one
    again: a snapshot is at most the size of the view, a backlog has no bound.

    ``buffered_bytes`` is ``None`` under a server that does not count (Channels' test communicator, a plain
    daphne): then only acknowledgements bound what a connection is sent.
    """

    buffered_bytes: Callable[[], int] | None = None
    seq: int = 0
    resync_due: bool = False
    _unacked: deque[int] = field(default_factory=deque)
    _recent_delays: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def has_room(self) -> bool:
        if len(self._unacked) >= MAX_UNACKED_MESSAGES:
            return False
        return self.buffered_bytes is None or self.buffered_bytes() < MAX_BUFFERED_BYTES

    def sent(self, *, seq: int) -> None:
        """A message went out: its last frame is ``seq``."""
        self._unacked.append(seq)

    def acknowledge(self, seq: int) -> bool:
        """The client applied every frame up to ``seq``; ``True`` when a due snapshot can go now."""
        if seq > self.seq:
            raise BadMessage(f"ack for seq {seq}, but the last frame sent is {self.seq}")
        while self._unacked and self._unacked[0] <= seq:
            self._unacked.popleft()
        return self.resync_due and self.has_room()

    def admit(self, *, event_ts: int, now_ms: int) -> Admission:
        """What to do with an event from the ingest: forward it, skip it, or send a snapshot instead."""
        delay = now_ms - event_ts
        self._recent_delays.append(delay)
        if delay - min(self._recent_delays) > LATE_AFTER_MS or not self.has_room():
            self.defer_snapshot()
            return "skip"
        return "resync" if self.resync_due else "forward"

    def defer_snapshot(self) -> None:
        """A snapshot is owed but there is no room for it: it goes once the client acknowledges."""
        self.resync_due = True

    def snapshot_sent(self) -> None:
        self.resync_due = False
