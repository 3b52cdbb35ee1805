"""A running stack for the browser tests, and Debian's Chromium driven by Playwright.

* ``live_stack`` (one per session): the Bybit simulator (BTC and ETH, one push a second per
  contract so that a 2-core machine stays responsive), a Celery worker and beat on a fresh SQLite
  database (SOL disabled, the simulator does not list it), and daphne serving the collected static
  files, all on free loopback ports and the test Redis.
* ``browser`` (one per session) and ``page`` (one per test): Chromium at ``/usr/bin/chromium``,
  never a downloaded one (``playwright install`` is not used). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from ingest.keys import feed_lease_key
from ingest.simulator import SimulatorConfig
from ingest.simulator.runner import SimulatorProcess, run_simulator_process
from ingest.status import read_feed_status
from ingest.store import purge_asset
from optionsite.devstack import free_port, web_server_args
from tests.browser import CHROMIUM, chromium_installed
from tests.ingest.conftest import poll

BASE_DIR = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
ARTIFACTS = BASE_DIR / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ASSETS = ("BTC", "ETH")


@dataclass
class LiveStack:
    base_url: str
    simulator: SimulatorProcess
    directory: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(args, cwd=BASE_DIR, env=self.env, stdout=log, stderr=log)

    def start_daphne(self) -> None:
        port = self.base_url.rsplit(":", 1)[1]
        self.start("daphne", web_server_args(host="127.0.0.1", port=port))
        poll(self.answers, timeout=30, interval=0.2, message="daphne answers")

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/chain/indexes.json", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def feeds_live(client: redis.Redis) -> bool:
    statuses = [read_feed_status(client, asset) for asset in ASSETS]
    return all(status is not None and status.state == "live" and status.index_price for status in statuses)


# Package scope: the stack (worker, beat, daphne) and Playwright's event loop must be gone before other
# packages run, or their feeds and leases would meet this worker's (same Redis prefix).
@pytest.fixture(scope="package")
def live_stack(tmp_path_factory: pytest.TempPathFactory, redis_client: redis.Redis) -> Iterator[LiveStack]:
    if not (BASE_DIR / "node_modules" / "uplot" / "dist").is_dir():
        pytest.fail("node_modules/uplot is missing: run `npm ci` (make install does)")
    directory = tmp_path_factory.mktemp("stack")
    config = SimulatorConfig(assets=ASSETS, seed=7, rate_hz=1.0, refuse_mode="http503")
    with (
        (directory / "simulator.log").open("wb") as simulator_log,
        run_simulator_process(config, stderr=simulator_log) as simulator,
    ):
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
            "BYBIT_REST_URL": simulator.rest_url,
            "BYBIT_WS_URL": simulator.ws_url,
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "FEED_LEASE_TTL": "6",
            "PYTHONUNBUFFERED": "1",
        }
        manage(env, "migrate", "--noinput", "-v0")
        manage(
            env,
            "shell",
            "-c",
            "from assets.models import Asset; Asset.objects.filter(symbol='SOL').update(enabled=False)",
        )
        manage(env, "collectstatic", "--noinput", "-v0")
        stack = LiveStack(base_url=f"http://127.0.0.1:{free_port()}", simulator=simulator, directory=directory, env=env)
        celery = str(BIN_DIR / "celery")
        try:
            stack.start(
                "worker", [celery, "-A", "optionsite", "worker", "--pool", "threads", "-c", "4", "-Q", "celery,feeds"]
            )
            stack.start("beat", [celery, "-A", "optionsite", "beat", "-s", str(directory / "beat-schedule")])
            stack.start_daphne()
            poll(lambda: feeds_live(redis_client), timeout=60, interval=0.5, message="BTC and ETH feeds live")
            yield stack
        finally:
            for name in list(stack.processes):
                stack.stop(name)
            for asset in ASSETS:
                purge_asset(redis_client, asset=asset)
                redis_client.delete(feed_lease_key(asset))


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    # Outside CI, the root conftest.py deselects the browser tests when there is no Chromium.
    if not chromium_installed():
        pytest.fail(f"no Chromium at {CHROMIUM} (CI=true: the browser tests must run; apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.errors = errors
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=False)
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Write a screenshot to ``test-artifacts/<name>.png`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
