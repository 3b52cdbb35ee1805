"""The simulator as a process of its own: the CLI, the management command, HTTP controls, signals."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pybit.unified_trading import HTTP

from ingest.simulator import SimulatorConfig, run_simulator_process
from ingest.simulator.config import config_to_argv, parse_cli
from tests.ingest.conftest import REAL_SYMBOLS_FILE, SIMULATOR_START

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_it_runs_as_a_subprocess_controlled_over_http(pybit_http: Callable[[str], HTTP], wait_for: Any) -> None:
    config = SimulatorConfig(assets=("SOL",), seed=3, start=SIMULATOR_START, log_level="WARNING")
    with run_simulator_process(config, stderr=subprocess.DEVNULL) as simulator:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", simulator.rest_url)
        assert simulator.ws_url == f"ws://127.0.0.1:{simulator.port}/v5/public/option"
        rows = pybit_http(simulator.rest_url).get_instruments_info(category="option", baseCoin="SOL")
        assert [row["symbol"] for row in rows["result"]["list"]] == simulator.live_symbols("SOL")
        simulator.set_malformed_rate(rate=0.25, kinds=["non_numeric"])
        simulator.withhold_pongs(kind="json")
        faults = simulator.state()["faults"]
        assert (faults["malformed_rate"], faults["malformed_kinds"]) == (0.25, ["non_numeric"])
        assert (faults["withhold_pongs"], faults["withhold_pong_kind"]) == (True, "json")
        simulator.clear_faults()
        assert simulator.state()["faults"]["malformed_rate"] == 0
        delivered = simulator.advance_to_next_delivery()["delivered"]
        assert delivered
        assert not set(delivered) & set(simulator.live_symbols("SOL"))
        assert simulator.connection_count() == 0
    assert simulator.process.returncode == 0, "SIGTERM stops it cleanly"


def test_its_controls_reject_bad_requests() -> None:
    import json
    import urllib.error
    import urllib.request

    config = SimulatorConfig(assets=("SOL",), start=SIMULATOR_START, log_level="WARNING")
    with run_simulator_process(config, stderr=subprocess.DEVNULL) as simulator:
        for action, body in (("explode", b"{}"), ("stall", b"{}"), ("malformed", b'{"rate": 3}'), ("stall", b"[")):
            request = urllib.request.Request(f"{simulator.rest_url}/sim/control/{action}", data=body, method="POST")
            with pytest.raises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(request, timeout=5)
            assert raised.value.code == 400
            assert json.loads(raised.value.read())["error"]
        assert simulator.state()["open_connections"] == 0


def test_it_serves_a_symbols_file() -> None:
    config = SimulatorConfig(symbols_file=REAL_SYMBOLS_FILE, log_level="WARNING")
    with run_simulator_process(config, stderr=subprocess.DEVNULL) as simulator:
        assert simulator.state()["live_symbols"] == {"BTC": 778, "ETH": 822, "SOL": 378}
        assert "ETH-26DEC25-3000-C" in simulator.live_symbols("ETH")
        assert "ETH-26DEC25-3000-C-USDT" in simulator.live_symbols("ETH")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_management_command_announces_its_urls_and_stops_on_a_signal(stop_signal: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "bybit_simulator", "--port", "0", "--assets", "SOL", "--log-level", "WARNING"],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = re.compile(r"REST (http://127\.0\.0\.1:\d+) WS (ws://127\.0\.0\.1:\d+/v5/public/option)")
        lines: list[str] = []
        while not any(ready.search(line) for line in lines):
            lines.append(process.stdout.readline())
            assert lines[-1], f"exited before announcing its URLs: {lines} {process.stderr.read()}"  # type: ignore[union-attr]
        assert len(lines) == 1, "with --log-level WARNING the URL line is all it says"
        started = time.monotonic()
        process.send_signal(stop_signal)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_its_command_line_round_trips_a_config() -> None:
    config = SimulatorConfig(
        host="127.0.0.1",
        port=0,
        assets=("BTC", "XRP"),
        seed=11,
        rate_hz=4.0,
        reprice_hz=0.5,
        symbols_file=REAL_SYMBOLS_FILE,
        speed=60.0,
        start=SIMULATOR_START,
        bench=True,
        over_limit_reply="ret_msg",
        fail_reply_ret_msg=True,
        refuse_mode="http503",
        malformed_rate=0.1,
        malformed_kinds=("bad_json", "non_numeric"),
        drop_every=3.0,
        rest_delay=0.2,
    )
    assert parse_cli(config_to_argv(config)) == config


@pytest.mark.parametrize(
    "argv",
    [["--rate", "0"], ["--speed", "0"], ["--malformed-rate", "2"], ["--malformed-kinds", "weird"], ["--start", "soon"]],
)
def test_its_command_line_rejects_bad_values(argv: list[str]) -> None:
    with pytest.raises((SystemExit, ValueError)):
        parse_cli(argv)
