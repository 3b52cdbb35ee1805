"""System checks run by ``manage.py check``/``migrate`` and by ``make demo`` before it starts."""

from typing import Any

import redis
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from optionsite.redis_client import redis_connection


@register("redis")
def check_redis_reachable(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        redis_connection().ping()
    except redis.RedisError as exc:
        return [
            Error(
                f"Redis at REDIS_URL={settings.REDIS_URL!r} does not answer: {exc}",
                hint="Start Redis, or point REDIS_URL at one (`make demo` starts a private one when none answers).",
                id="optionsite.E001",
            )
        ]
    return []
