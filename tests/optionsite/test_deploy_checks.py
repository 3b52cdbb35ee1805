"""A production start refuses the demo's account, and `check --deploy` is clean behind a TLS proxy when told so."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from optionsite.checks import check_no_staff_user_has_the_demo_password
from optionsite.devstack import free_port

BASE_DIR = Path(__file__).resolve().parents[2]
TLS_PROXY_ENV = {
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_COOKIES": "1",
}
# What `check --deploy` said with debug off and a strong key before these settings existed (issue #12, item 6).
HTTPS_WARNINGS = ("security.W004", "security.W008", "security.W012", "security.W016")


def production_env(**overrides: str) -> dict[str, str]:
    """Our environment (the test Redis) with debug off, a strong secret key and nothing else of Django's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "BYBIT_"))}
    env.update({"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def deploy_warnings(env: dict[str, str]) -> set[str]:
    result = manage(env, "check", "--deploy")
    # Warnings alone leave the exit code 0: anything else (a bad setting, no Redis) would hide them.
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"\(([a-z_]+\.[WE]\d+)\)", result.stdout + result.stderr))


def test_it_warns_about_https_when_nothing_says_there_is_a_tls_proxy() -> None:
    env = production_env(DATABASE_URL="sqlite:///:memory:")
    assert set(HTTPS_WARNINGS) <= deploy_warnings(env)


def test_it_clears_the_https_warnings_behind_a_tls_proxy() -> None:
    env = production_env(DATABASE_URL="sqlite:///:memory:", **TLS_PROXY_ENV)
    assert deploy_warnings(env).isdisjoint(HTTPS_WARNINGS)


@pytest.mark.django_db
def test_it_redirects_plain_http_to_https_but_not_the_health_probes(settings: Settings) -> None:
    """A container's healthcheck and a load balancer ask over plain http, inside the proxy."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()
    redirected = client.get("/api/")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/api/"
    assert client.get("/api/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
    assert client.get("/api/health/live/").status_code == 200
    assert client.get("/api/health/live").status_code == 200


# --- The demo's account ---------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_a_staff_user_with_the_demos_password_when_debug_is_off(
    settings: Settings, django_user_model: type[User]
) -> None:
    settings.DEBUG = False
    django_user_model.objects.create_superuser("admin", "admin@localhost", "admin")
    django_user_model.objects.create_user("ops", password="admin", is_staff=True)
    errors = check_no_staff_user_has_the_demo_password(databases=["default"])
    assert [error.id for error in errors] == ["optionsite.E002", "optionsite.E002"]
    assert "'admin'" in errors[0].msg
    assert "'ops'" in errors[1].msg


@pytest.mark.django_db
def test_it_lets_the_demo_account_be_in_debug(settings: Settings, django_user_model: type[User]) -> None:
    settings.DEBUG = True
    django_user_model.objects.create_superuser("admin", "admin@localhost", "admin")
    assert check_no_staff_user_has_the_demo_password(databases=["default"]) == []


@pytest.mark.django_db
def test_it_ignores_other_passwords_inactive_users_and_users_who_cannot_write(
    settings: Settings, django_user_model: type[User]
) -> None:
    settings.DEBUG = False
    django_user_model.objects.create_superuser("admin", "admin@localhost", "a-real-password")
    django_user_model.objects.create_superuser("old", "old@localhost", "admin", is_active=False)
    django_user_model.objects.create_user("reader", password="admin")
    django_user_model.objects.create_user("nopassword", is_staff=True)
    assert check_no_staff_user_has_the_demo_password(databases=["default"]) == []


@pytest.mark.django_db
def test_it_hashes_nothing_for_commands_that_do_not_ask_about_the_database(
    settings: Settings, django_user_model: type[User]
) -> None:
    """Every management command runs the system checks; only `migrate` and `check --database` pass a database."""
    settings.DEBUG = False
    django_user_model.objects.create_superuser("admin", "admin@localhost", "admin")
    assert check_no_staff_user_has_the_demo_password(databases=None) == []


@pytest.fixture(scope="module")
def database_the_demo_used(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database in which an earlier `make demo` (debug on) created admin/admin, as db.sqlite3 once was."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo-db') / 'db.sqlite3'}"
    env = production_env(DJANGO_DEBUG="1", DATABASE_URL=url)
    for args in (("migrate", "--noinput", "-v0"), ("ensure_demo_superuser",)):
        result = manage(env, *args)
        assert result.returncode == 0, result.stderr
    return url


def test_a_production_web_start_refuses_the_demo_account(database_the_demo_used: str) -> None:
    """The compose web service runs `migrate` before it serves, and stops there."""
    result = manage(production_env(DATABASE_URL=database_the_demo_used), "migrate", "--noinput")
    assert result.returncode == 1
    assert "optionsite.E002" in result.stderr
    assert "'admin'" in result.stderr


def test_a_debug_start_accepts_the_demo_account(database_the_demo_used: str) -> None:
    result = manage(production_env(DJANGO_DEBUG="1", DATABASE_URL=database_the_demo_used), "migrate", "--noinput")
    assert result.returncode == 0, result.stderr


def test_make_run_with_debug_off_refuses_the_demo_account_before_it_starts_anything(
    database_the_demo_used: str,
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    env = production_env(
        DATABASE_URL=database_the_demo_used,
        PORT=str(free_port()),
        FEED_PROCESSES="1",
        # Were it to start after all, it must not reach the exchange.
        BYBIT_REST_URL=f"http://{dead}",
        BYBIT_WS_URL=f"ws://{dead}/v5/public/option",
    )
    result = subprocess.run(
        [sys.executable, "-m", "optionsite.devstack", "run"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 2, result.stdout
    assert "optionsite.E002" in result.stderr
    assert "`manage.py check --database default` failed" in result.stderr
