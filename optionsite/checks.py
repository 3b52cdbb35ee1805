"""System checks run by ``manage.py check``/``migrate`` and by ``make demo`` before it starts."""

from collections.abc import Sequence
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.core.checks import CheckMessage, Error, Tags, register
from django.db import connections
from django.db.models import Q

from optionsite.management.commands.ensure_demo_superuser import DEMO_PASSWORD
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


@register(Tags.database)
def check_no_staff_user_has_the_demo_password(
    app_configs: Any = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """With debug off, refuse any active staff user or superuser whose password is the demo's (issue #12, item 5):
    an account `make demo` created in a database that a production run now serves.

    A database check, so only ``migrate`` (the web's start in compose, ``make run``) and ``check --database``
    run it, not every management command: it costs one password hash per staff user (PBKDF2, ~0.2 s each
    here), fine for a handful. Users who are not staff cannot change anything, and are not looked at.
    """
    if settings.DEBUG or not databases:
        return []
    User = get_user_model()
    errors: list[CheckMessage] = []
    for alias in databases:
        if User._meta.db_table not in connections[alias].introspection.table_names():
            continue  # not migrated yet: no user at all
        staff = User.objects.using(alias).filter(Q(is_staff=True) | Q(is_superuser=True), is_active=True)
        for username, encoded in staff.order_by("pk").values_list(User.USERNAME_FIELD, "password"):
            # hashers.check_password, not user.check_password: that one may rewrite the stored hash.
            if check_password(DEMO_PASSWORD, encoded):
                errors.append(
                    Error(
                        f"The staff user {username!r} has the demo's password ({DEMO_PASSWORD!r}) and DJANGO_DEBUG "
                        "is off: anyone can log in as them.",
                        hint=f"Change it (`manage.py changepassword {username}`) or deactivate the user. "
                        "`make demo` keeps its account in a database of its own, db-demo.sqlite3.",
                        id="optionsite.E002",
                    )
                )
    return errors
