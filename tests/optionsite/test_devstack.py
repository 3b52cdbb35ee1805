"""`make run`/`make demo` bring the whole stack up, and one Ctrl-C takes it down."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import psutil
import pytest
import websocket

from optionsite.devstack import (
    DEMO_DATABASE_URL,
    PrivateRedis,
    ensured_redis,
    feed_services,
    free_port,
    front_services,
    redis_answers,
    stack_env,
)

BASE_DIR = Path(__file__).resolve().parents[2]


def test_it_uses_the_redis_that_answers(redis_client) -> None:
    from django.conf import settings

    with ensured_redis(settings.REDIS_URL) as url:
        assert url == settings.REDIS_URL


def test_it_starts_a_private_redis_when_none_answers_and_stops_it_after() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with ensured_redis(dead) as url:
        assert url != dead
        assert redis_answers(url)
    assert not redis_answers(url)


def test_a_private_redis_keeps_nothing_on_disk() -> None:
    server = PrivateRedis.start()
    try:
        workdir = Path(server.workdir.name)
        assert redis_answers(server.url)
    finally:
        server.stop()
    assert not workdir.exists()


def test_it_starts_one_feed_process_per_core_unless_told_how_many() -> None:
    assert len(feed_services({})) == (os.cpu_count() or 1)
    assert [service.name for service in feed_services({"FEED_PROCESSES": "3"})] == ["feeds1", "feeds2", "feeds3"]


def test_every_feed_process_takes_feeds_and_beats_tasks_under_a_name_of_its_own() -> None:
    for number, service in enumerate(feed_services({"FEED_PROCESSES": "2"}), start=1):
        args = service.args
        assert args[args.index("--pool") + 1] == "threads"
        assert args[args.index("-Q") + 1] == "celery,feeds"
        assert args[args.index("-n") + 1] == f"feeds{number}@%h"


def test_the_history_worker_alone_takes_the_history_queue_one_task_at_a_time() -> None:
    """Its snapshots write to the database for seconds: in a process of its own, never a feed process's."""
    history = next(service for service in front_services() if service.name == "history")
    args = history.args
    assert args[args.index("-Q") + 1] == "history"
    assert args[args.index("-n") + 1] == "history@%h"
    assert (args[args.index("--pool") + 1], args[args.index("--concurrency") + 1]) == ("solo", "1")
    assert [service.name for service in front_services()] == ["beat", "history"]


def test_it_refuses_a_bad_number_of_feed_processes_with_one_line() -> None:
    env = {**os.environ, "FEED_PROCESSES": "0", "DJANGO_DEBUG": "1", "DATABASE_URL": "sqlite:///:memory:"}
    result = subprocess.run(
        [sys.executable, "-m", "optionsite.devstack", "feeds"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Configuration error: FEED_PROCESSES=0 is out of range [1, 64].")


def test_the_demo_keeps_its_data_in_a_database_of_its_own() -> None:
    """Not db.sqlite3, which `make run` and a production run without DATABASE_URL use: admin/admin stays there."""
    assert stack_env("demo", {})["DATABASE_URL"] == DEMO_DATABASE_URL
    assert DEMO_DATABASE_URL.endswith("/db-demo.sqlite3")


def test_make_run_uses_the_default_database() -> None:
    assert "DATABASE_URL" not in stack_env("run", {})
    assert "DATABASE_URL" not in stack_env("feeds", {})


def test_the_demo_uses_the_database_the_user_names() -> None:
    assert stack_env("demo", {"DATABASE_URL": "sqlite:////tmp/mine.sqlite3"})["DATABASE_URL"] == (
        "sqlite:////tmp/mine.sqlite3"
    )


def test_local_runs_are_debug_runs_unless_given_a_secret_key() -> None:
    assert stack_env("demo", {})["DJANGO_DEBUG"] == "1"
    assert stack_env("run", {})["DJANGO_DEBUG"] == "1"
    assert "DJANGO_DEBUG" not in stack_env("run", {"DJANGO_SECRET_KEY": "k" * 50})
    assert "DJANGO_DEBUG" not in stack_env("feeds", {})


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def demo_env(tmp_path: Path, *, port: int, **changes: str) -> dict[str, str]:
    """``make demo``'s environment for a test: its own port, database and (absent, so started) Redis."""
    return {
        **os.environ,
        "PORT": str(port),
        # No Redis answers here: the stack must start its own.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_DEBUG": "1",
        **changes,
    }


def command_lines(processes: list[psutil.Process]) -> str:
    """The command lines of ``processes``, leaving out any that ended meanwhile (a ``manage.py`` step exits and is a
    zombie until the launcher reaps it: asking its command line then raised ``ZombieProcess``)."""
    lines = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):  # ZombieProcess is one
            lines.append(" ".join(process.cmdline()))
    return " ".join(lines)


def recorded_assets(database: Path, *, within: float) -> set[str]:
    """The assets that have per-contract and per-expiry history in ``database``, once every seeded one has or
    ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.closing(sqlite3.connect(database, timeout=5)) as db:
            contracts = {row[0] for row in db.execute("SELECT DISTINCT asset FROM history_contractsnapshot")}
            expiries = {row[0] for row in db.execute("SELECT DISTINCT asset FROM history_expirysnapshot")}
        if contracts & expiries >= {"BTC", "ETH", "SOL"} or time.monotonic() > deadline:
            return contracts & expiries
        time.sleep(1)


@pytest.mark.slow
def test_the_demo_serves_live_data_admin_and_api_then_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    # Snapshots every 5 s instead of 60: the history worker records the live chain within the test.
    env = demo_env(tmp_path, port=port, FEED_PROCESSES="2", HISTORY_INTERVAL="5")
    env.pop("DJANGO_SECRET_KEY", None)
    stack = subprocess.Popen(
        [sys.executable, "-m", "optionsite.devstack", "demo"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and stack.poll() is None:
            try:
                status, _ = get(f"http://127.0.0.1:{port}/api/health/")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.5)
        # Healthy means every enabled asset's feed is live: simulator → worker → Redis → web.
        assert status == 200, "the stack did not answer /api/health/ with 200 within 60 s"
        assert get(f"http://127.0.0.1:{port}/admin/login/")[0] == 200
        assert get(f"http://127.0.0.1:{port}/api/")[0] == 200
        names = command_lines(psutil.Process(stack.pid).children(recursive=True))
        for expected in (
            "redis-server",
            "bybit_simulator",
            "feeds1@",
            "feeds2@",
            "beat",
            "history@",
            "optionsite.webserver",
        ):
            assert expected in names
        assert recorded_assets(tmp_path / "db.sqlite3", within=40) == {"BTC", "ETH", "SOL"}
        children = psutil.Process(stack.pid).children(recursive=True)
    finally:
        stack.send_signal(signal.SIGINT)
        output, _ = stack.communicate(timeout=30)
    assert stack.returncode == 0, output
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert "started a private one" in output


@pytest.mark.slow
def test_no_process_outlives_a_launcher_killed_with_sigkill(tmp_path: Path) -> None:
    # The private redis-server and daphne write nothing unasked, so a closed pipe would not end them.
    env = demo_env(tmp_path, port=free_port(), FEED_PROCESSES="1")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "optionsite.devstack", "demo"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    wanted = ("redis-server", "bybit_simulator", "feeds1@", "beat", "history@", "optionsite.webserver")
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            children = psutil.Process(launcher.pid).children(recursive=True)
            names = command_lines(children)
            if all(name in names for name in wanted):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the stack did not start: {names}")
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=10)
    _gone, alive = psutil.wait_procs(children, timeout=20)
    for process in alive:
        process.kill()
    assert alive == []


@pytest.mark.slow
def test_two_web_processes_share_the_port_and_each_viewer_gets_live_updates(tmp_path: Path) -> None:
    port = free_port()
    env = demo_env(tmp_path, port=port, FEED_PROCESSES="1", WEB_PROCESSES="2")
    stack = subprocess.Popen(
        [sys.executable, "-m", "optionsite.devstack", "demo"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and stack.poll() is None:
            try:
                if get(f"{base}/api/health/")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the stack did not answer /api/health/ with 200")
        # Each request a new connection: the kernel hands them to both processes.
        pids = {orjson.loads(get(f"{base}/api/stats/")[1])["web"]["pid"] for _ in range(40)}
        assert len(pids) == 2, pids
        # Viewers land on either process; every one gets the feed's updates through the shared channel layer.
        url = f"ws://127.0.0.1:{port}/ws/chain/BTC/"
        viewers = [websocket.create_connection(url, origin=base, timeout=10) for _ in range(4)]
        for viewer in viewers:
            kinds = set()
            while "update" not in kinds:
                frame = orjson.loads(viewer.recv())
                kinds.add(frame["type"])
                viewer.send(orjson.dumps({"type": "ack", "seq": frame["seq"]}).decode())
            viewer.close()
        children = psutil.Process(stack.pid).children(recursive=True)
        assert sum("--fd" in child.cmdline() for child in children) == 2
    finally:
        stack.send_signal(signal.SIGINT)
        output, _ = stack.communicate(timeout=30)
    assert stack.returncode == 0, output
    assert "2 web processes" in output
