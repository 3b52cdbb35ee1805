"""Why the API cannot answer, and how each reason becomes an HTTP status.

The query functions raise the plain exceptions below; ``api_exception_handler`` (set as
DRF's ``EXCEPTION_HANDLER``) turns them, and any Redis error, into JSON answers.
"""

from __future__ import annotations

from typing import Any

import redis
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.views import exception_handler

from chain.unavailable import REDIS_UNAVAILABLE, log_unavailable


class UnknownAsset(LookupError):
    def __init__(self, asset: str) -> None:
        super().__init__(f"unknown asset {asset}; see /api/assets/")
        self.asset = asset


class AssetDisabled(Exception):
    def __init__(self, asset: str) -> None:
        super().__init__(f"asset {asset} is disabled; its feed is stopped and it serves no data")
        self.asset = asset


class UnknownExpiry(LookupError):
    def __init__(self, asset: str, expiry: str) -> None:
        super().__init__(f"{asset} has no expiry {expiry} listed; see /api/expiries/{asset}/")
        self.asset = asset
        self.expiry = expiry


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is in a state that does not allow this request."
    default_code = "conflict"


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is temporarily unavailable."
    default_code = "service_unavailable"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    extra: dict[str, Any] = {}
    if isinstance(exc, UnknownAsset | UnknownExpiry):
        exc = NotFound(str(exc))
    elif isinstance(exc, AssetDisabled):
        extra = {"asset": exc.asset, "enabled": False}
        exc = Conflict(str(exc), code="asset_disabled")
    elif isinstance(exc, redis.RedisError):
        log_unavailable(service="Redis", error=exc)
        exc = ServiceUnavailable(REDIS_UNAVAILABLE, code="redis_unavailable")
    response = exception_handler(exc, context)
    if response is not None and extra:
        response.data.update(extra)
    return response
