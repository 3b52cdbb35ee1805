"""The history's tasks run on the history worker only, on beat's schedule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from optionsite.celery import app

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("task", ["history.record_snapshots", "history.prune"])
def test_history_tasks_go_to_the_history_queue_which_no_feed_process_takes(task: str) -> None:
    assert app.amqp.router.route({}, task)["queue"].name == "history"
    from optionsite.devstack import feed_services

    for service in feed_services({"FEED_PROCESSES": "2"}):
        assert "history" not in service.args[service.args.index("-Q") + 1].split(",")


def test_beat_takes_a_snapshot_every_interval_and_prunes_hourly() -> None:
    schedule: dict[str, Any] = settings.CELERY_BEAT_SCHEDULE
    assert schedule["history-record"]["task"] == "history.record_snapshots"
    assert schedule["history-record"]["schedule"] == settings.HISTORY_INTERVAL == 60
    assert schedule["history-record"]["options"]["expires"] == 60
    assert schedule["history-prune"] == {"task": "history.prune", "schedule": 3600.0, "options": {"expires": 3600.0}}


def settings_of(**environ: str) -> str:
    code = (
        "from django.conf import settings; "
        "print(sorted(name for name in settings.CELERY_BEAT_SCHEDULE if name.startswith('history')), "
        "settings.HISTORY_INTERVAL)"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "optionsite.settings", "DJANGO_DEBUG": "1", **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip() or result.stderr.strip().splitlines()[-1]


def test_history_off_schedules_nothing_and_a_bad_interval_stops_the_process() -> None:
    assert settings_of(HISTORY_ENABLED="0") == "[] 60"
    assert settings_of(HISTORY_INTERVAL="15") == "['history-prune', 'history-record'] 15"
    assert "HISTORY_INTERVAL" in settings_of(HISTORY_INTERVAL="0")
