"""No input of any kind makes the API answer 500: schemathesis drives every operation of /api/schema/.

Each operation gets valid and invalid inputs generated from the schema (a bounded number
per operation), sent in-process through the WSGI application to real Redis and the test
database; every answer must be below 500 (save the health check's documented 503) and
match the schema: status code, content type and body.
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 30


# Loaded when the module is collected (pytest-django has set Django up by then); the lazy
# ``schemathesis.pytest.from_fixture`` does not work with pytest 9.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(max_examples=MAX_EXAMPLES)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])


@pytest.fixture(autouse=True)
def chains(fill: Any, redis_client: Any, db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quoted BTC and ETH chains, SOL listed but never quoted; every feed live."""
    from optionsite.throttling import AnonRedisRateThrottle
    from tests.chain.market import write_status

    fill("BTC", limit_expiries=2)
    fill("ETH", limit_expiries=1)
    fill("SOL", quoted=False, live=False)
    write_status(redis_client, asset="SOL")
    # Hundreds of anonymous requests in seconds: the throttle has its own test in test_options_api.
    monkeypatch.setattr(AnonRedisRateThrottle, "THROTTLE_RATES", {"anon": "1000000/min"})


@pytest.fixture
def staff_token(db: None) -> str:
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    user = User.objects.create_user("fuzzer", password="pw", is_staff=True)
    return Token.objects.create(user=user).key


def check(case: Any, response: Any) -> None:
    if case.operation.path in ("/api/health/", "/api/health/ready/") and response.status_code == 503:
        assert response.json().get("healthy", response.json().get("ready")) is False
        checks = [response_schema_conformance, content_type_conformance]
    else:
        checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks)


# None keeps the generated name.
ASSET_NAMES = ("BTC", "btc", "ETH", "SOL", "Sol", "XRP", None)


def aim(case: Any) -> None:
    """Most generated asset names are unknown (a 404, tested elsewhere): aim most cases at configured ones.

    The choice follows from the generated name, so that Hypothesis can replay and shrink a failure.
    """
    for name in ("asset", "symbol"):
        if case.path_parameters and isinstance(case.path_parameters.get(name), str):
            generated = case.path_parameters[name]
            chosen = ASSET_NAMES[zlib.crc32(generated.encode("utf-8", "replace")) % len(ASSET_NAMES)]
            if chosen is not None:
                case.path_parameters[name] = chosen


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_it_never_fails_an_anonymous_client(case: Any) -> None:
    aim(case)
    check(case, case.call())


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_it_never_fails_a_staff_client(case: Any, staff_token: str) -> None:
    aim(case)
    check(case, case.call(headers={"Authorization": f"Token {staff_token}"}))
