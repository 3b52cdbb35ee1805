"""Failed logins, counted in the test Redis per client and per username, refused with 429 on every login door."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from optionsite.redis_client import redis_key

pytestmark = pytest.mark.django_db

LIMIT = 10
WINDOW = 300
# The start of a window of WINDOW seconds.
T0 = 1_800_000_000.0


@pytest.fixture(autouse=True)
def _limits(settings: Settings) -> None:
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_FAILURE_WINDOW = WINDOW
    # Django's real hasher spends ~0.4 s on each password: these tests check hundreds of wrong ones.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_counts(redis_client: redis.Redis) -> Iterator[None]:
    def delete() -> None:
        counts = list(redis_client.scan_iter(match=redis_key("throttle:*"), count=1000))
        if counts:
            redis_client.delete(*counts)

    delete()
    yield
    delete()


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("staff", password="right", is_staff=True, is_superuser=True)


def token_login(client: Client, username: str = "staff", password: str = "wrong", **extra: Any) -> Any:
    return client.post("/api/token/", {"username": username, "password": password}, **extra)


def admin_login(client: Client, username: str = "staff", password: str = "wrong", **extra: Any) -> Any:
    body = {"username": username, "password": password, "next": "/admin/"}
    return client.post("/admin/login/", body, **extra)


def browsable_api_login(client: Client, username: str = "staff", password: str = "wrong") -> Any:
    return client.post("/api-auth/login/", {"username": username, "password": password})


def retry_after(response: Any) -> int:
    return int(response["Retry-After"])


def test_it_refuses_the_eleventh_wrong_token_request_with_retry_after(client: Client, staff: User) -> None:
    responses = [token_login(client) for _ in range(LIMIT + 1)]
    assert [response.status_code for response in responses] == [400] * LIMIT + [429]
    assert 1 <= retry_after(responses[-1]) <= 2 * WINDOW
    assert responses[-1].json()["detail"].startswith("Too many failed logins")


def test_it_refuses_the_eleventh_wrong_admin_login_with_a_page_that_says_when_to_retry(staff: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")
    csrf = {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    responses = [
        client.post("/admin/login/", {"username": "staff", "password": "wrong", **csrf}) for _ in range(LIMIT + 1)
    ]
    assert [response.status_code for response in responses] == [200] * LIMIT + [429]
    refused = responses[-1]
    assert 1 <= retry_after(refused) <= 2 * WINDOW
    page = refused.content.decode()
    assert "Too many failed logins" in page
    assert f"{retry_after(refused)} seconds" in page


def test_a_locked_out_user_is_refused_even_with_the_right_password(client: Client, staff: User) -> None:
    for _ in range(LIMIT):
        token_login(client)
    assert token_login(client, password="right").status_code == 429
    assert admin_login(client, password="right").status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_successful_login_does_not_count(client: Client, staff: User) -> None:
    for _ in range(LIMIT - 1):
        assert token_login(client).status_code == 400
    for _ in range(5):
        assert token_login(client, password="right").status_code == 200
    assert admin_login(client, password="right").status_code == 302
    assert token_login(client).status_code == 400  # the tenth failure
    assert token_login(client).status_code == 429


def test_it_throttles_one_client_guessing_many_usernames(client: Client) -> None:
    statuses = [token_login(client, username=f"user{n}").status_code for n in range(LIMIT + 1)]
    assert statuses == [400] * LIMIT + [429]
    assert admin_login(client, username="someone-else").status_code == 429
    # Another client, guessing another username, is not held back.
    assert token_login(client, username="user99", REMOTE_ADDR="198.51.100.1").status_code == 400


def test_it_throttles_one_username_guessed_from_many_clients(client: Client, staff: User) -> None:
    statuses = [token_login(client, REMOTE_ADDR=f"198.51.100.{n}").status_code for n in range(LIMIT + 1)]
    assert statuses == [400] * LIMIT + [429]
    assert admin_login(client, REMOTE_ADDR="192.0.2.1").status_code == 429
    # The same client, trying another username, is not held back.
    assert token_login(client, username="someone-else", REMOTE_ADDR="192.0.2.1").status_code == 400


def test_it_counts_one_username_however_it_is_spelt(client: Client, staff: User) -> None:
    full_width = "\uff53\uff54\uff41\uff46\uff46"
    spellings = ["staff", "Staff", " staff", "STAFF ", full_width]
    statuses = [
        token_login(client, username=spellings[n % len(spellings)], REMOTE_ADDR=f"198.51.100.{n}").status_code
        for n in range(LIMIT + 1)
    ]
    assert statuses == [400] * LIMIT + [429]


def test_behind_a_trusted_proxy_it_counts_the_forwarded_client_not_the_proxy(
    client: Client, settings: Settings
) -> None:
    settings.API_TRUSTED_PROXIES = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    statuses = [
        admin_login(client, username=f"user{n}", HTTP_X_FORWARDED_FOR=f"spoofed-{n}, 203.0.113.7", **proxy).status_code
        for n in range(LIMIT + 1)
    ]
    assert statuses == [200] * LIMIT + [429]
    assert admin_login(client, username="user99", HTTP_X_FORWARDED_FOR="198.51.100.1", **proxy).status_code == 200


def test_behind_a_trusted_proxy_one_username_guessed_from_many_clients_is_throttled(
    client: Client, settings: Settings, staff: User
) -> None:
    settings.API_TRUSTED_PROXIES = 1
    statuses = [token_login(client, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(LIMIT + 1)]
    assert statuses == [400] * LIMIT + [429]


def test_failures_at_one_door_count_at_the_others(client: Client, staff: User) -> None:
    for _ in range(LIMIT // 2):
        assert admin_login(client).status_code == 200
    for _ in range(LIMIT - LIMIT // 2):
        assert browsable_api_login(client).status_code == 200
    assert token_login(client).status_code == 429
    assert admin_login(client).status_code == 429
    assert browsable_api_login(client).status_code == 429


def test_the_lockout_ends_when_the_failures_have_slid_out_of_the_window(
    client: Client, staff: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [T0]
    monkeypatch.setattr("optionsite.login_throttle.timer", lambda: now[0])
    for _ in range(LIMIT):
        token_login(client)
    refused = token_login(client)
    # 10 failures in this window: one more fits once they weigh 9, 10 % into the next window.
    assert retry_after(refused) == WINDOW + WINDOW // 10
    now[0] = T0 + WINDOW + WINDOW // 10 - 1
    assert token_login(client, password="right").status_code == 429
    now[0] += 1
    assert token_login(client, password="right").status_code == 200


def test_its_keys_stay_short_whatever_the_username(client: Client, redis_client: redis.Redis) -> None:
    assert token_login(client, username="u" * 8192).status_code == 400
    keys = [key.decode() for key in redis_client.scan_iter(match=redis_key("throttle:login:*"))]
    assert len(keys) == 2  # one per client, one per username
    assert all(len(key) < 100 for key in keys)
    assert not any("uuuu" in key for key in keys)


def test_it_lets_logins_through_when_redis_is_down(client: Client, staff: User, settings: Settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    assert [token_login(client).status_code for _ in range(LIMIT + 1)] == [400] * (LIMIT + 1)
    assert token_login(client, password="right").status_code == 200
