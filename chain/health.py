"""Whether this installation can serve live data right now, and if not, why."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from django.db import DatabaseError, connection

from optionsite.redis_client import redis_connection


@dataclass
class HealthReport:
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def health_report() -> HealthReport:
    report = HealthReport()
    try:
        redis_connection().ping()
    except redis.RedisError as exc:
        report.problems.append(f"redis: {exc}")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        report.problems.append(f"database: {exc}")
    return report
