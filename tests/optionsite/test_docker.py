from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from optionsite.devstack import free_port, redis_answers, redis_server_binary
from tests import in_ci

BASE_DIR = Path(__file__).resolve().parents[2]
COMPOSE = BASE_DIR / "docker" / "compose.yaml"
# What compose refuses to start without; the passwords go into URLs, hence hex.
REQUIRED = ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD")
APP_SERVICES = ("web", "worker", "beat", "history")

# Skipped on a machine without docker-compose, except in CI (CI=true), where it must run.
needs_docker_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None and not in_ci(),
    reason="docker-compose is not installed (apt-get install docker-compose; .ci/run installs it)",
)


def required_env() -> dict[str, str]:
    # 64 characters for the key: Django's deploy check wants 50 or more.
    return {name: secrets.token_hex(32 if name == "DJANGO_SECRET_KEY" else 24) for name in REQUIRED}


def docker_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """docker-compose on the file with only ``env`` (and PATH, HOME) for it to interpolate."""
    assert shutil.which("docker-compose"), "CI=true and docker-compose is not installed"
    base = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), *args],
        env={**base, **env},
        cwd=COMPOSE.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )


def resolved_services(env: dict[str, str]) -> dict[str, Any]:
    result = docker_compose("config", env=env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


@needs_docker_compose
def test_the_compose_file_parses_without_an_engine() -> None:
    result = docker_compose("config", "-q", env=required_env())
    assert result.returncode == 0, result.stderr


@needs_docker_compose
@pytest.mark.parametrize("missing", REQUIRED)
@pytest.mark.parametrize("empty", [False, True], ids=["unset", "empty"])
def test_it_refuses_to_start_without_each_secret(missing: str, empty: bool) -> None:
    env = required_env()
    if empty:
        env[missing] = ""
    else:
        del env[missing]
    result = docker_compose("config", "-q", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_no_password_is_written_in_the_compose_file() -> None:
    """Each use of a secret is the variable itself, required (``${NAME:?...}``), never a literal or a default."""
    text = COMPOSE.read_text()
    for name in REQUIRED:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, name
        assert all(use.startswith(":?") for use in uses), (name, uses)
    services = yaml.safe_load(text)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    command = services["redis"]["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    # The app services' URLs (x-app) hold the passwords as variables too.
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        database = r"postgres://optionsite:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/optionsite"
        assert re.fullmatch(database, environment["DATABASE_URL"]), name
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379/0", environment["REDIS_URL"]), name


@needs_docker_compose
def test_the_passwords_reach_every_place_that_uses_them() -> None:
    env = required_env()
    services = resolved_services(env)
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    command = services["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == env["REDIS_PASSWORD"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["DJANGO_SECRET_KEY"] == env["DJANGO_SECRET_KEY"]
        database = urlsplit(environment["DATABASE_URL"])
        assert (database.hostname, database.username) == (
            "postgres",
            services["postgres"]["environment"]["POSTGRES_USER"],
        )
        assert database.password == env["POSTGRES_PASSWORD"]
        cache = urlsplit(environment["REDIS_URL"])
        assert (cache.hostname, cache.password) == ("redis", env["REDIS_PASSWORD"])


@needs_docker_compose
def test_the_redis_healthcheck_authenticates_and_wants_a_pong() -> None:
    """redis-cli exits 0 on an error reply too (NOAUTH): only PONG may count as healthy."""
    env = required_env()
    redis = resolved_services(env)["redis"]
    # redis-cli takes its password from REDISCLI_AUTH, off the command line.
    assert redis["environment"]["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]
    check = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli ping" in check
    assert "grep -q PONG" in check


@needs_docker_compose
def test_the_app_services_run_as_behind_a_tls_proxy_and_check_deploy_says_so() -> None:
    """`manage.py check --deploy` with the web service's settings (its database and Redis aside: ours here)."""
    environment = resolved_services(required_env())["web"]["environment"]
    assert environment["DJANGO_SECURE_PROXY_SSL_HEADER"] == "HTTP_X_FORWARDED_PROTO,https"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "BYBIT_"))}
    # A variable listed without a value (WEB_PROCESSES:) is passed through only when set: here it is not.
    env.update(
        {
            key: str(value)
            for key, value in environment.items()
            if key not in ("DATABASE_URL", "REDIS_URL") and value is not None
        }
    )
    env["DATABASE_URL"] = "sqlite:///:memory:"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning not in result.stdout + result.stderr


def test_the_app_reaches_a_redis_that_wants_a_password_through_the_url_compose_gives_it(tmp_path: Path) -> None:
    password = secrets.token_hex(24)
    port = free_port()
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password]
    server = subprocess.Popen(
        [*args, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL
    )
    try:
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_answers(url, timeout=0.2):
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.05)
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "BYBIT_"))}
        env.update({"DJANGO_DEBUG": "1", "DATABASE_URL": "sqlite:///:memory:"})
        check = [sys.executable, "manage.py", "check"]
        allowed = subprocess.run(
            check, cwd=BASE_DIR, env={**env, "REDIS_URL": url}, capture_output=True, text=True, timeout=60
        )
        assert allowed.returncode == 0, allowed.stderr
        anonymous = {**env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        refused = subprocess.run(check, cwd=BASE_DIR, env=anonymous, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1
        assert "optionsite.E001" in refused.stderr
        assert "Authentication required" in refused.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"redis", "postgres", "web", "worker", "beat", "history"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name


def test_the_history_worker_takes_only_the_history_queue_and_no_feed_process_takes_it() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    command = services["history"]["command"]
    assert command[command.index("-Q") + 1] == "history"
    assert command[command.index("-n") + 1] == "history@%h"
    assert "history@$$HOSTNAME" in services["history"]["healthcheck"]["test"][1]
    assert services["worker"]["command"] == ["python", "-m", "optionsite.devstack", "feeds"]


def test_the_webs_healthcheck_asks_only_whether_it_serves() -> None:
    """Not /api/health/: that is 503 while any feed is stale, and an exchange outage would mark the web unhealthy."""
    web = yaml.safe_load(COMPOSE.read_text())["services"]["web"]
    check = " ".join(web["healthcheck"]["test"])
    assert "/api/health/live/" in check
