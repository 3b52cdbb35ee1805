"""The anonymous rate limit: a sliding-window counter in the test Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.test import Client, override_settings
from pytest_django.fixtures import Settings
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from optionsite.redis_client import redis_key
from optionsite.throttling import AnonRedisRateThrottle

# The start of a period, well inside one window of any of the rates used here.
T0 = 1_800_000_000.0


@pytest.fixture(autouse=True)
def _no_counters(redis_client: redis.Redis) -> Iterator[None]:
    def delete() -> None:
        counters = list(redis_client.scan_iter(match=redis_key("throttle:*"), count=1000))
        if counters:
            redis_client.delete(*counters)

    delete()
    yield
    delete()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [T0]
    monkeypatch.setattr(AnonRedisRateThrottle, "timer", staticmethod(lambda: now[0]))
    return now


def anonymous(address: str = "203.0.113.7", *, forwarded: str | None = None) -> Request:
    headers: dict[str, Any] = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    return Request(APIRequestFactory().get("/api/assets/", REMOTE_ADDR=address, **headers), authenticators=[])


@dataclass
class Verdict:
    allowed: bool
    throttle: AnonRedisRateThrottle

    def wait(self) -> float | None:
        return self.throttle.wait()


def throttle(rate: str) -> Callable[[Request], Verdict]:
    """A check of one request against ``rate``, as DRF makes it: a new throttle per request."""

    class Limited(AnonRedisRateThrottle):
        THROTTLE_RATES = {"anon": rate}

    def check(request: Request) -> Verdict:
        instance = Limited()
        return Verdict(instance.allow_request(request, None), instance)

    return check


def test_it_allows_the_rate_then_refuses(clock: list[float]) -> None:
    check = throttle("10/min")
    assert [check(anonymous()).allowed for _ in range(11)] == [True] * 10 + [False]


def test_it_counts_each_client_apart(clock: list[float]) -> None:
    check = throttle("2/min")
    assert [check(anonymous("203.0.113.7")).allowed for _ in range(3)] == [True, True, False]
    assert check(anonymous("198.51.100.1")).allowed


def test_it_weighs_the_previous_window_by_what_is_left_of_it(clock: list[float]) -> None:
    check = throttle("10/min")
    for _ in range(10):
        assert check(anonymous()).allowed
    # 30 s into the next window, half of the previous 10 still count: 5 more fit.
    clock[0] = T0 + 90
    assert [check(anonymous()).allowed for _ in range(6)] == [True] * 5 + [False]
    # Two periods later nothing counts any more.
    clock[0] = T0 + 180
    assert check(anonymous()).allowed


def test_it_says_how_long_to_wait(clock: list[float]) -> None:
    check = throttle("10/min")
    for _ in range(10):
        check(anonymous())
    refused = check(anonymous())
    assert not refused.allowed
    # 11 counted in this window: the next window, 60 s on, starts with all 11 weighing;
    # 9 of them may weigh when one more request comes: 60 * (1 - 9 / 11) ≈ 11 s more.
    assert refused.wait() == 60 + 11
    clock[0] = T0 + 60 + 11
    assert check(anonymous()).allowed


def test_it_says_when_the_previous_window_has_slid_out_enough(clock: list[float]) -> None:
    check = throttle("10/min")
    for _ in range(10):
        check(anonymous())
    clock[0] = T0 + 60 + 6  # 10 % into the next window: 9 of the previous 10 weigh
    assert check(anonymous()).allowed
    refused = check(anonymous())  # 9 + 2 > 10
    assert not refused.allowed
    # The next request fits when the 10 weigh 7 (10 - 2 counted - 1 more): 30 % in, 12 s on.
    assert refused.wait() == 12
    clock[0] += 12
    assert check(anonymous()).allowed


def test_its_counters_expire_after_two_periods(clock: list[float], redis_client: redis.Redis) -> None:
    throttle("10/min")(anonymous())
    (counter,) = redis_client.scan_iter(match=redis_key("throttle:*"))
    assert counter.decode() == redis_key(f"throttle:anon:203.0.113.7:{int(T0 // 60)}")
    assert 0 < redis_client.ttl(counter) <= 120


def test_it_lets_requests_through_when_redis_is_down() -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:9/0"):
        assert throttle("1/min")(anonymous()).allowed


@pytest.mark.django_db
def test_an_api_route_answers_429_with_retry_after(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AnonRedisRateThrottle, "THROTTLE_RATES", {"anon": "2/min"})
    responses = [client.get("/api/assets/") for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 429]
    assert 1 <= int(responses[-1]["Retry-After"]) <= 120
    assert responses[-1].json()["detail"].startswith("Request was throttled.")


def test_it_counts_a_client_by_its_socket_address_whatever_it_forwards(clock: list[float]) -> None:
    check = throttle("10/min")
    verdicts = [check(anonymous(forwarded=f"198.51.100.{n}")).allowed for n in range(11)]
    assert verdicts == [True] * 10 + [False]


def test_behind_trusted_proxies_it_counts_the_address_the_outermost_one_saw(
    clock: list[float], settings: Settings
) -> None:
    settings.API_TRUSTED_PROXIES = 2
    check = throttle("2/min")
    # What the client sent, then what the two proxies appended: the client's address, then the first proxy's.
    verdicts = [check(anonymous("10.0.0.3", forwarded=f"spoofed-{n}, 203.0.113.9, 10.0.0.2")).allowed for n in range(3)]
    assert verdicts == [True, True, False]
    assert check(anonymous("10.0.0.3", forwarded="203.0.113.10, 10.0.0.2")).allowed
    # Fewer addresses than proxies: the leftmost, as DRF's NUM_PROXIES takes it.
    assert check(anonymous("10.0.0.3", forwarded="198.51.100.1")).allowed


def test_it_keeps_its_keys_short_whatever_a_client_forwards(
    clock: list[float], settings: Settings, redis_client: redis.Redis
) -> None:
    settings.API_TRUSTED_PROXIES = 1
    check = throttle("10/min")
    assert check(anonymous(forwarded="x" * 8192)).allowed
    assert check(anonymous(forwarded="y" * 8192)).allowed
    keys = [key.decode() for key in redis_client.scan_iter(match=redis_key("throttle:*"))]
    assert len(keys) == 2
    assert all(len(key) < 100 for key in keys)


@pytest.mark.django_db
def test_rotating_x_forwarded_for_does_not_escape_an_api_routes_throttle(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AnonRedisRateThrottle, "THROTTLE_RATES", {"anon": "2/min"})
    responses = [client.get("/api/assets/", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}") for n in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 429]
