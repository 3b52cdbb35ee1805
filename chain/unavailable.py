"""What an answer says when Redis or the database does not answer, and where the reason goes instead.

The error itself names the server: redis-py's says ``Error 111 connecting to 10.0.0.5:6379``, a database
driver's its host and port. A client has no use for either and an attacker some, so 503 bodies and the
health checks' problems say only which service is away (docs/api.md, "Errors"); the reason is logged, at
most one line per service per 10 s per process, however many requests fail meanwhile.
"""

from __future__ import annotations

import logging
from typing import Literal

from ingest.throttled_log import RateLimitedLog

REDIS_UNAVAILABLE = "Redis is unavailable"

outage_log = RateLimitedLog(logging.getLogger(__name__))


def log_unavailable(*, service: Literal["Redis", "database"], error: Exception) -> None:
    """Log why ``service`` did not answer, which the answer itself leaves out."""
    outage_log.warning(service, "%s is unavailable: %s: %s", service, type(error).__name__, error, asset="-")
