"""Whether this installation can serve live data right now, and if not, why.

Three questions, for three kinds of callers (docs/api.md, "Health"):

* alive (``/api/health/live/``): the web process answers; nothing else is asked. A container's
  healthcheck: restarting a web process because the exchange or Redis is away would help no one.
* ready (``/api/health/ready/``): it can serve data: Redis and the database answer. A load
  balancer's check; data of a stale feed is still served, marked ``fresh: false``.
* healthy (``/api/health/``): ready, and every enabled asset's feed is fresh. Monitoring's check.

Healthy means: Redis answers, the database answers, and the feed of every enabled asset
is fresh (``FeedStatus.stale_reason``: live, its data at most ``FEED_STALE_AFTER`` seconds
old, and its writes' lag p99 within ``FEED_STALE_AFTER`` too).
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
from chain.unavailable import log_unavailable
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


def readiness_problems() -> list[str]:
    """What keeps this process from serving data: Redis or the database not answering (why is logged:
    the error names the server's address, ``chain.unavailable``)."""
    problems = []
    try:
        redis_connection().ping()
    except redis.RedisError as exc:
        log_unavailable(service="Redis", error=exc)
        problems.append("redis: unavailable")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        log_unavailable(service="database", error=exc)
        problems.append("database: unavailable")
    return problems


def health_report() -> HealthReport:
    report = HealthReport(problems=readiness_problems())
    if report.problems:
        return report
    try:
        enabled = list(Asset.objects.enabled().values_list("symbol", flat=True))
    except DatabaseError as exc:
        log_unavailable(service="database", error=exc)
        report.problems.append("database: unavailable")
        return report
    try:
        statuses = read_feed_statuses(redis_connection(), assets=enabled)
    except redis.RedisError as exc:
        log_unavailable(service="Redis", error=exc)
        report.problems.append("redis: unavailable")
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
    return status.stale_reason(stale_after=stale_after, now_ms=now_ms)
