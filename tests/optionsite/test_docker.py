import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import in_ci

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


# Skipped on a machine without docker-compose, except in CI (CI=true), where it must run.
@pytest.mark.skipif(
    shutil.which("docker-compose") is None and not in_ci(),
    reason="docker-compose is not installed (apt-get install docker-compose; .ci/run installs it)",
)
def test_the_compose_file_parses_without_an_engine() -> None:
    assert shutil.which("docker-compose"), "CI=true and docker-compose is not installed"
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"redis", "postgres", "web", "worker", "beat"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name


def test_the_webs_healthcheck_asks_only_whether_it_serves() -> None:
    """Not /api/health/: that is 503 while any feed is stale, and an exchange outage would mark the web unhealthy."""
    web = yaml.safe_load(COMPOSE.read_text())["services"]["web"]
    check = " ".join(web["healthcheck"]["test"])
    assert "/api/health/live/" in check
