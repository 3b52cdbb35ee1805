"""Ways to run the simulator: in a background thread (tests), as a subprocess (demo, benchmarks), or
in the foreground until SIGTERM/SIGINT (the CLI and the management command).

Both handles — :class:`RunningSimulator` (thread) and :class:`SimulatorProcess` (subprocess) — offer the
same controls; the thread one calls the server on its loop, the process one goes through
``POST /sim/control/<action>`` and ``GET /sim/state``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from ingest.simulator.config import SimulatorConfig, config_to_argv
from ingest.simulator.server import SimulatorServer

logger = logging.getLogger("ingest.simulator")
PROJECT_DIR = Path(__file__).resolve().parents[2]
_READY = re.compile(r"REST (?P<rest>\S+) WS (?P<ws>\S+)")


def ready_line(*, rest_url: str, ws_url: str) -> str:
    """The one line a started simulator prints; :func:`run_simulator_process` waits for it."""
    return f"Bybit simulator listening: REST {rest_url} WS {ws_url} (controls: POST {rest_url}/sim/control/<action>)"


class SimulatorHandle:
    """Controls and introspection of a running simulator, whichever way it runs."""

    rest_url: str
    ws_url: str

    def _control(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Everything ``GET /sim/state`` returns: connections, counters, faults, simulated time."""
        raise NotImplementedError

    def live_symbols(self, base: str) -> list[str]:
        """The symbols of ``base`` listed right now, in instruments-info order."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        return int(self.rest_url.rsplit(":", 1)[1])

    # Faults.
    def drop_connections(self) -> int:
        """TCP-reset every WebSocket now (no close frame); returns how many."""
        return int(self._control("drop", {})["dropped"])

    def close_connections(self, *, code: int = 1000, reason: str = "") -> int:
        """Send a close frame to every WebSocket; returns how many."""
        return int(self._control("close", {"code": code, "reason": reason})["closed"])

    def refuse_connections(self, *, seconds: float) -> None:
        """Refuse new connections (REST and WebSocket) for ``seconds``; open ones are untouched."""
        self._control("refuse", {"seconds": seconds})

    def stall(self, *, seconds: float) -> None:
        """Send nothing for ``seconds`` (no pushes, no replies, no pongs) while keeping sockets open."""
        self._control("stall", {"seconds": seconds})

    def stall_pushes(self, *, seconds: float, connections: int = 1) -> list[str]:
        """Stop the ticker pushes of the ``connections`` oldest sockets for ``seconds`` (pings still answered)."""
        return list(self._control("stall_pushes", {"seconds": seconds, "connections": connections})["stalled"])

    def withhold_pongs(self, *, enabled: bool = True, kind: str | None = None) -> None:
        """Stop (or resume) answering pings: ``kind`` is ``both``, ``json`` or ``control``."""
        body: dict[str, Any] = {"enabled": enabled}
        if kind is not None:
            body["kind"] = kind
        self._control("withhold_pongs", body)

    def set_malformed_rate(self, *, rate: float, kinds: list[str] | None = None) -> None:
        """Replace this fraction of ticker frames by malformed ones (of ``kinds``, default all)."""
        body: dict[str, Any] = {"rate": rate}
        if kinds is not None:
            body["kinds"] = kinds
        self._control("malformed", body)

    def set_rest_delay(self, *, seconds: float) -> None:
        self._control("rest_delay", {"seconds": seconds})

    def set_drop_every(self, *, seconds: float) -> None:
        """TCP-reset every WebSocket every ``seconds`` (0 = off)."""
        self._control("drop_every", {"seconds": seconds})

    def set_close_every(self, *, seconds: float, code: int | None = None) -> None:
        """Send close frames to every WebSocket every ``seconds`` (0 = off)."""
        body: dict[str, Any] = {"seconds": seconds}
        if code is not None:
            body["code"] = code
        self._control("close_every", body)

    def clear_faults(self) -> None:
        self._control("clear", {})

    # Time.
    def advance_to_next_delivery(self) -> dict[str, Any]:
        """Jump the simulated clock just past the next 08:00 UTC; returns what was delivered and listed."""
        return self._control("advance", {})

    def set_speed(self, speed: float) -> None:
        self._control("speed", {"speed": speed})

    # Introspection.
    def connection_count(self) -> int:
        return int(self.state()["open_connections"])

    def topics_per_connection(self) -> list[int]:
        return [int(conn["topics"]) for conn in self.state()["connections"]]

    def messages_sent(self) -> int:
        """Data frames pushed so far (tickers, trades, malformed ones); replies and pongs not counted."""
        return int(self.state()["messages_sent"])

    def slow_reader_disconnects(self) -> int:
        """Connections dropped for a backlog older than ``max_backlog_seconds`` (``slow_reader="disconnect"``)."""
        return int(self.state()["slow_reader_disconnects"])


class RunningSimulator(SimulatorHandle):
    """A simulator on its own event loop in a background thread; every method is safe from any thread."""

    def __init__(self, *, server: SimulatorServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.config = server.config
        self.rest_url = server.rest_url
        self.ws_url = server.ws_url

    def call(self, function: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``function`` on the simulator's loop and return its result."""

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def _control(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return asyncio.run_coroutine_threadsafe(self.server.control(action, body), self.loop).result(10.0)

    def state(self) -> dict[str, Any]:
        return self.call(self.server.state)

    def live_symbols(self, base: str) -> list[str]:
        return self.call(lambda: self.server.market.live_symbols(base))


@contextmanager
def run_simulator_in_thread(config: SimulatorConfig | None = None) -> Iterator[RunningSimulator]:
    """Start a simulator on a background thread (default: a free loopback port) and stop it on exit."""
    config = config or SimulatorConfig()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    holder: list[SimulatorServer] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            server = SimulatorServer(config)
            loop.run_until_complete(server.start())
            holder.append(server)
        except BaseException as error:
            failure.append(error)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=main, name="bybit-simulator", daemon=True)
    thread.start()
    if not started.wait(60):
        raise RuntimeError("the simulator did not start within 60 s")
    if failure:
        raise RuntimeError("the simulator failed to start") from failure[0]
    try:
        yield RunningSimulator(server=holder[0], loop=loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)


class SimulatorProcess(SimulatorHandle):
    """A simulator running as a subprocess, controlled over HTTP."""

    def __init__(self, *, process: subprocess.Popen[str], rest_url: str, ws_url: str) -> None:
        self.process = process
        self.rest_url = rest_url
        self.ws_url = ws_url

    def _http(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(dict(body)).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.rest_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def _control(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._http("POST", f"/sim/control/{action}", body)

    def state(self) -> dict[str, Any]:
        return self._http("GET", "/sim/state")

    def live_symbols(self, base: str) -> list[str]:
        return list(self._http("GET", f"/sim/symbols?baseCoin={quote(base)}")["symbols"])

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return int(self.process.returncode)


def simulator_command(config: SimulatorConfig, *, python: str = sys.executable) -> list[str]:
    """The command line that runs ``config`` in a process of its own."""
    return [python, "-m", "ingest.simulator", *config_to_argv(config)]


@contextmanager
def run_simulator_process(
    config: SimulatorConfig | None = None,
    *,
    stderr: int | IO[Any] | None = None,
    startup_timeout: float = 30.0,
    python: str = sys.executable,
) -> Iterator[SimulatorProcess]:
    """Start ``python -m ingest.simulator`` (default: a free loopback port), wait until it listens, stop it on exit.

    Its log goes to ``stderr`` (default: ours); its stdout carries only the ready line.
    """
    config = config or SimulatorConfig()
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_DIR), environment.get("PYTHONPATH")]))
    process = subprocess.Popen(
        simulator_command(config, python=python),
        cwd=PROJECT_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read_stdout, name="simulator-stdout", daemon=True).start()
    handle: SimulatorProcess | None = None
    try:
        try:
            match = None
            while match is None:
                match = _READY.search(lines.get(timeout=startup_timeout))
        except queue.Empty:
            raise RuntimeError(f"the simulator subprocess did not start within {startup_timeout} s") from None
        handle = SimulatorProcess(process=process, rest_url=match["rest"], ws_url=match["ws"])
        yield handle
    finally:
        if handle is not None:
            handle.stop()
        elif process.poll() is None:
            process.kill()
            process.wait()


def serve_forever(config: SimulatorConfig, *, on_ready: Callable[[str, str], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then close every connection and return.

    ``on_ready(rest_url, ws_url)`` is called once the port is bound.
    """
    asyncio.run(_serve(config, on_ready))


async def _serve(config: SimulatorConfig, on_ready: Callable[[str, str], None] | None) -> None:
    server = SimulatorServer(config)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stopping.set)
    try:
        if on_ready is not None:
            on_ready(server.rest_url, server.ws_url)
        await stopping.wait()
        logger.info("simulator stopping")
    finally:
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signal_number)
        await server.stop()
