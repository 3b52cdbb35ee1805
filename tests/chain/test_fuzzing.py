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
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
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

    # A superuser: a staff user needs the admin's permissions on assets too to change one (assets/views.py).
    user = User.objects.create_user("fuzzer", password="pw", is_staff=True, is_superuser=True)
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


# Inputs no generator makes, each once against every operation it concerns (docs/api.md, "Errors").
def operation_of(result: Ok[Any] | Err[Any]) -> Any:
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


OPERATIONS = [operation_of(result) for result in schema.get_all_operations()]
JSON_OPERATIONS = [
    operation for operation in OPERATIONS if "application/json" in {b.media_type for b in operation.body}
]
# A JSON document 100,000 levels deep: Python's parser recursed once per level and raised RecursionError.
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
# Sent as ``sessionid="abcdefgh\000ijkl"``: Django decodes a quoted cookie's octal escape, and PostgreSQL
# refuses the NUL when the session is looked up.
NUL_SESSION_COOKIE = {"sessionid": "abcdefgh\x00ijkl"}


def known_case(operation: Any) -> Any:
    """The operation's case with every path parameter an asset that exists (BTC)."""
    return operation.Case(path_parameters={parameter.name: "BTC" for parameter in operation.path_parameters})


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=lambda operation: operation.label)
def test_it_refuses_a_json_body_nested_100000_deep_from_staff(operation: Any, staff_token: str) -> None:
    response = known_case(operation).call(
        data=DEEP_JSON, headers={"Authorization": f"Token {staff_token}", "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text[:500]
    assert response.json()["detail"].startswith("JSON parse error - ")
    check(known_case(operation), response)


@pytest.mark.parametrize("operation", JSON_OPERATIONS, ids=lambda operation: operation.label)
def test_it_refuses_a_json_body_nested_100000_deep_from_an_anonymous_client(operation: Any) -> None:
    response = known_case(operation).call(data=DEEP_JSON, headers={"Content-Type": "application/json"})
    # Staff-only writes are refused before their body is read.
    expected = 400 if operation.path == "/api/token/" else 403
    assert response.status_code == expected, response.text[:500]
    check(known_case(operation), response)


# The two answers below come from Django before the API (text/plain, or Django's 400 page): they are below 500,
# not in the schema's content types.
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_it_refuses_a_nul_in_a_cookie(operation: Any) -> None:
    response = known_case(operation).call(cookies=NUL_SESSION_COOKIE)
    assert response.status_code == 400, response.text[:500]
    assert "NUL" in response.text


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_it_refuses_more_than_1000_query_parameters_even_under_debug(operation: Any) -> None:
    with override_settings(DEBUG=True):
        response = known_case(operation).call(params={f"p{index}": "1" for index in range(1001)})
    assert response.status_code == 400, response.text[:500]
    assert "TooManyFieldsSent" in response.text
