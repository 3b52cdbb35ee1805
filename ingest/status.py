"""A feed's status as kept in the hash ``<prefix>feed:<ASSET>`` (written by the feed every flush), and the one
rule that says whether its data is fresh (docs/redis.md, "Feed status")."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields

import redis

from ingest.events import FEED_STATES, FeedState
from ingest.keys import feed_status_key
from optionsite import clock


@dataclass
class FeedStatus:
    asset: str
    state: FeedState = "connecting"
    worker: str = ""
    connections: int = 0
    connections_wanted: int = 0
    subscribed: int = 0
    instruments: int = 0
    last_message_ts: int = 0
    # The exchange ts of the data: each connection's newest ticker written, taken from the connection furthest
    # behind (epoch ms; 0 before every connection delivered one). Its age is how stale the data is.
    data_ts: int = 0
    messages_per_second: float = 0.0
    messages_total: int = 0
    reconnects: int = 0
    rejected_frames: int = 0
    # Exchange ts → visible in Redis, over the last seconds of writes (ms); None before any.
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    index_price: float = 0.0
    started_ts: int = 0
    updated_ts: int = 0

    def to_redis(self) -> dict[str, str]:
        return {name: "" if value is None else str(value) for name, value in asdict(self).items()}

    @classmethod
    def from_redis(cls, asset: str, raw: dict[bytes, bytes]) -> FeedStatus | None:
        """``None`` when there is no status (the feed never ran, or its data was removed)."""
        if not raw:
            return None
        values = {key.decode(): value.decode() for key, value in raw.items()}
        status = cls(asset=asset)
        for field in fields(cls):
            if field.name == "asset" or field.name not in values:
                continue
            default = getattr(status, field.name)
            if default is None:  # an optional figure: "" is "none yet"
                text = values[field.name]
                with contextlib.suppress(ValueError):
                    setattr(status, field.name, float(text) if text else None)
                continue
            try:
                setattr(status, field.name, type(default)(values[field.name]))
            except ValueError:
                continue
        if status.state not in FEED_STATES:
            status.state = "stale"
        return status

    def last_message_age(self, now_ms: int | None = None) -> float | None:
        """Seconds since the last ticker; ``None`` if none arrived yet."""
        if not self.last_message_ts:
            return None
        now_ms = now_ms if now_ms is not None else clock.now_ms()
        return max(0.0, (now_ms - self.last_message_ts) / 1000)

    def data_age(self, now_ms: int | None = None) -> float | None:
        """Seconds from the data's exchange ts (``data_ts``) to now; ``None`` before there is data."""
        if not self.data_ts:
            return None
        now_ms = now_ms if now_ms is not None else clock.now_ms()
        return max(0.0, (now_ms - self.data_ts) / 1000)

    def lagging(self, *, stale_after: float) -> bool:
        """Its writes were more than ``stale_after`` seconds behind the exchange (p99, lately)."""
        return self.lag_p99_ms is not None and self.lag_p99_ms > stale_after * 1000

    def stale_reason(self, *, stale_after: float, now_ms: int | None = None) -> str | None:
        """Why the data cannot be taken as live, in words; ``None`` when it is fresh.

        Fresh: the feed says ``live``, its data (``data_ts``) is at most ``stale_after`` seconds old now, and its
        writes' lag p99 is within ``stale_after`` too. The age is taken at read time, so that a feed that stopped
        writing (a killed worker, a stalled socket) goes stale on its own; the feed applies the same rule when it
        writes its ``state`` (``feed_state``). Every reader uses this: the API's ``fresh``, ``/api/health/``,
        the page's indicator.
        """
        if self.state in ("connecting", "stopped"):
            return f"state is {self.state}"
        age = self.data_age(now_ms)
        if age is None:
            return "no ticker received yet"
        if age > stale_after:
            return f"newest data {age:.1f} s old (limit {stale_after:g} s)"
        if self.lagging(stale_after=stale_after):
            return f"lag p99 {(self.lag_p99_ms or 0) / 1000:.1f} s (limit {stale_after:g} s)"
        if self.state != "live":
            return f"state is {self.state}"
        return None

    def is_fresh(self, *, stale_after: float, now_ms: int | None = None) -> bool:
        return self.stale_reason(stale_after=stale_after, now_ms=now_ms) is None


def read_feed_status(client: redis.Redis, asset: str) -> FeedStatus | None:
    return FeedStatus.from_redis(asset, client.hgetall(feed_status_key(asset)))  # type: ignore[arg-type]


def feed_state(
    *,
    data_age: float | None,
    lag_p99_ms: float | None,
    connections: int,
    wanted: int,
    stale_after: float,
) -> FeedState:
    """A running feed's state: stale once its data is ``stale_after`` old or its writes fall that far behind."""
    if data_age is None:
        return "connecting"
    if data_age > stale_after or (lag_p99_ms is not None and lag_p99_ms > stale_after * 1000):
        return "stale"
    if connections < wanted:
        return "connecting"
    return "live"
