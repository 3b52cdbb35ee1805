"""Whether this installation can serve live data right now, and if not, why.

Healthy means: Redis answers, the database answers, and the feed of every enabled asset
is fresh (live, a ticker arrived within ``FEED_STALE_AFTER`` seconds, and its writes' lag
p99 is within ``FEED_STALE_AFTER`` too: ``FeedStatus.is_fresh``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from assets.models import Asset
from chain.queries import feed_summary
from chain.readers import read_feed_statuses
from ingest.status import FeedStatus
from optionsite.clock import now_ms
from optionsite.redis_client import redis_connection


@dataclass
class HealthReport:
    problems: list[str] = field(default_factory=list)
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.problems


def health_report() -> HealthReport:
    report = HealthReport()
    redis_ok = database_ok = True
    try:
        redis_connection().ping()
    except redis.RedisError as exc:
        redis_ok = False
        report.problems.append(f"redis: {exc}")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        enabled = list(Asset.objects.enabled().values_list("symbol", flat=True))
    except DatabaseError as exc:
        database_ok = False
        report.problems.append(f"database: {exc}")
    if not (redis_ok and database_ok):
        return report
    try:
        statuses = read_feed_statuses(redis_connection(), assets=enabled)
    except redis.RedisError as exc:
        report.problems.append(f"redis: {exc}")
        return report
    now = now_ms()
    stale_after = settings.FEED_STALE_AFTER
    for asset, status in statuses.items():
        report.feeds[asset] = feed_summary(status, now_ms=now)
        problem = feed_problem(status, stale_after=stale_after, now_ms=now)
        if problem:
            report.problems.append(f"feed {asset}: {problem}")
    return report


def feed_problem(status: FeedStatus | None, *, stale_after: float, now_ms: int) -> str | None:
    """Why the feed is not fresh, in words; ``None`` if it is."""
    if status is None:
        return "no status in Redis (the feed has not started)"
    if status.is_fresh(stale_after=stale_after, now_ms=now_ms):
        return None
    # A feed lagging past the limit marks itself stale: say why, rather than only "state is stale".
    if status.lagging(stale_after=stale_after) and status.state in ("live", "stale"):
        return f"lag p99 {(status.lag_p99_ms or 0) / 1000:.1f} s (limit {stale_after:g} s)"
    if status.state != "live":
        return f"state is {status.state}"
    age = status.last_message_age(now_ms)
    if age is None:
        return "no ticker received yet"
    if age > stale_after:
        return f"last ticker {age:.1f} s ago (limit {stale_after:g} s)"
    return f"status last written {(now_ms - status.updated_ts) / 1000:.1f} s ago (limit {stale_after:g} s)"
