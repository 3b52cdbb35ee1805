"""Failed logins, counted in Redis per client and per username, and the check each login door makes first.

Checking a password costs ~0.4 s of CPU (Django's PBKDF2, on purpose), and so does a wrong
one for a username that does not exist: unthrottled, 8 parallel guessers slowed every
request to a p99 of 5.8 s (issue #12). So each door asks ``login_retry_after`` before it
authenticates, and answers 429 with ``Retry-After`` while the client, or the username, has
``LOGIN_FAILURE_LIMIT`` failures within ``LOGIN_FAILURE_WINDOW`` seconds: per client against
one guesser trying many usernames, per username against many clients guessing one. Being
refused costs one Redis round-trip and counts nothing; a successful login counts nothing
either. The doors: ``/admin/login/`` and ``/api-auth/login/`` (wrapped in ``login_throttled``,
optionsite/urls.py) and ``/api/token/`` (``LoginFailureThrottle``, assets/views.py).

Failures are counted where Django reports them: ``authenticate()`` sends ``user_login_failed``
for every door, with the request. The counters are ``optionsite.throttling``'s sliding windows,
shared by every web process; keys ``<prefix>throttle:login:client:<client>:<window>`` and
``<prefix>throttle:login:username:<hash>:<window>``, the username hashed: a key stays short
whatever is sent. Checking and counting are two steps: guesses checked at the same moment all
pass, so the limit may be overshot by the attempts in flight (HTTP_THREADS per web process), no more.

With Redis down, logins go through unthrottled (logged): the anonymous throttle does the same,
and refusing every login while Redis is away would lock out the staff too.
"""

from __future__ import annotations

import functools
import logging
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from optionsite.throttling import client_address, client_key, count_events, read_counts, short_hash

log = logging.getLogger(__name__)
# Whether Redis failed last time: an outage is logged when it starts and when it ends, not at every login.
_redis_failing = False

# Tests replace it, as DRF's throttles let theirs be.
timer = time.time


def login_retry_after(*, client: str, username: str) -> int | None:
    """Whole seconds until ``client`` may try to log in as ``username`` again; ``None`` if it may now."""
    names = _counter_names(client=client, username=username)
    try:
        counts = read_counts(names=names, duration=settings.LOGIN_FAILURE_WINDOW, now=timer())
    except redis.RedisError as exc:
        _redis_failed(exc)
        return None
    _redis_answered()
    limit: int = settings.LOGIN_FAILURE_LIMIT
    waits = [count.seconds_until_one_more(limit=limit) for count in counts if count.weighed() + 1 > limit]
    return max((int(wait) for wait in waits if wait is not None), default=None)


def login_failure_count(*, client: str, username: str) -> None:
    """Count a failed login by ``client`` as ``username``."""
    names = _counter_names(client=client, username=username)
    try:
        count_events(names=names, duration=settings.LOGIN_FAILURE_WINDOW, now=timer())
    except redis.RedisError as exc:
        _redis_failed(exc)
        return
    _redis_answered()


@receiver(user_login_failed, dispatch_uid="optionsite.login_throttle")
def _count_failed_login(
    sender: str, credentials: Mapping[str, Any], request: HttpRequest | Request | None = None, **kwargs: Any
) -> None:
    if request is None:
        return  # authenticate() called outside a request (a shell, a management command): no door to guard
    login_failure_count(client=client_address(request), username=str(credentials.get("username", "")))


def login_throttled(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """``view``, a login form's, answering 429 instead of checking a password while the attempt is throttled.

    The refusal is a page of its own (templates/registration/login_refused.html), with ``Retry-After``.
    """

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            wait = login_retry_after(client=client_address(request), username=request.POST.get("username", ""))
            if wait is not None:
                context = {"title": "Too many failed logins", "retry_after": wait, "minutes": max(1, round(wait / 60))}
                refused = TemplateResponse(request, "registration/login_refused.html", context, status=429)
                refused["Retry-After"] = str(wait)
                add_never_cache_headers(refused)
                return refused
        return view(request, *args, **kwargs)

    return guarded


class LoginFailureThrottle(BaseThrottle):
    """DRF's side of ``login_throttled``, for API views that take a username and a password (``/api/token/``).

    Raises ``Throttled`` itself rather than answering ``False``, so that the 429 says why.
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method != "POST":
            return True
        data = request.data
        username = data.get("username") if isinstance(data, Mapping) else None
        wait = login_retry_after(client=client_address(request), username="" if username is None else str(username))
        if wait is not None:
            raise Throttled(wait, detail="Too many failed logins from this client or for this username.")
        return True


def username_key(username: str) -> str:
    """The username's part of a counter's key: one hash for all the spellings a guesser could vary it by, the
    ones the forms fold (full-width letters, NFKC) or strip (spaces) and case, which the user table may or may
    not tell apart."""
    return short_hash(unicodedata.normalize("NFKC", username).strip().casefold())


def _counter_names(*, client: str, username: str) -> list[str]:
    return [f"throttle:login:client:{client_key(client)}", f"throttle:login:username:{username_key(username)}"]


def _redis_failed(exc: redis.RedisError) -> None:
    global _redis_failing
    if not _redis_failing:
        log.warning("failed logins are neither checked nor counted: Redis is unavailable: %s", exc)
    _redis_failing = True


def _redis_answered() -> None:
    global _redis_failing
    if _redis_failing:
        log.warning("failed logins are checked and counted again: Redis answers")
    _redis_failing = False
