"""The page and the API under real load (issue #13): ``make demo``'s stack, 100 viewers and 50 req/s at once.

The stack is the demo's, started by ``optionsite.devstack`` itself (``start_whole_stack``): the simulator with
its default universe, BTC, ETH and SOL, each listed contract pushed 10 times a second as Bybit does;
``FEED_PROCESSES`` feed workers; beat; ``WEB_PROCESSES`` web processes sharing one listening socket (defaults:
one feed process per core, half the cores for the web). It runs with ``DJANGO_DEBUG=0``, a temporary SQLite
database, a Redis key prefix of its own (deleted at the end) and ``API_ANON_RATE`` so high that the anonymous
throttle counts every request but never refuses one.

Once every feed is live and ``/api/health/`` says so, two load processes of their own (so that this process's
sampling adds nothing to what they measure) run for ``BENCH_SECONDS`` after a 10 s warm-up, together:

* 100 WebSocket clients on ``/ws/chain/BTC/`` (``bench_live.Client``: every frame applied and acknowledged, as
  the page does), connected 20 at a time: 90 on the page's chain view (its default: the nearest expiry, USDT),
  10 on the flat view of the whole chain. Latency per row = receive time minus the row's exchange ``ts`` (one
  machine, one clock); also resync snapshots and clients the server closed.
* ``GET /api/options/BTC/`` (the full chain as JSON, anonymous) 50 times a second, open loop: each request is
  sent when it is due, whatever became of the earlier ones, and its latency counts from then, so a server that
  falls behind shows its queue; 503s (with or without ``Retry-After``) and other answers are counted.

Meanwhile this process samples every web process's RSS once a second (peak; median of the window's first and
last thirds: does it grow?), every process's CPU over the window, and the feeds' freshness (exchange ``ts`` →
visible in Redis, ``bench_ingest.FreshnessSampler``).

Run: ``python -m tests.benchmarks load`` (``BENCH_SECONDS``, default 60; ``WEB_PROCESSES`` and
``FEED_PROCESSES`` as for ``make demo``). The stack's and the load processes' output go to
``bench-results/load/``. Figures go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import IO, TYPE_CHECKING, Any, Literal, TextIO, TypedDict

import orjson
import psutil

from optionsite import devstack
from tests.benchmarks.bench_ingest import (
    FreshnessSampler,
    Watched,
    delete_prefix,
    machine_line,
    percentile,
    received_total,
)
from tests.benchmarks.bench_live import CLIENTS, WARMUP_SECONDS, WHOLE_CHAIN_CLIENTS, Client, redis_cpu
from tests.benchmarks.bench_page import healthy

if TYPE_CHECKING:
    from ingest.simulator.runner import SimulatorProcess

BASE_DIR = Path(__file__).resolve().parents[2]
LOGS = BASE_DIR / "bench-results" / "load"
HOST = "127.0.0.1"
ASSET = "BTC"
ASSETS = ("BTC", "ETH", "SOL")
PUSHES_PER_SECOND = 10  # the simulator's default rate_hz: Bybit's 100 ms per option ticker
CONNECT_BATCH = 20  # as bench_live: more than ~100 handshakes at once fail (docs/benchmarks.md, "Live chain")
CONNECT_TIMEOUT = 30.0
REST_RATE = 50.0
REST_TIMEOUT = 30.0
STACK_LIVE_TIMEOUT = 120.0

# The targets of issue #13.
WS_P99_TARGET_MS = 300.0
REST_P99_TARGET_MS = 100.0
RSS_TOLERANCE = 0.05


class LoadConfig(TypedDict):
    """What a load process is told, as one JSON argument."""

    role: Literal["websocket", "rest"]
    base_url: str
    expiry: str
    settle: str
    # When the measured window opens (epoch seconds); the WebSocket process sets it once its clients are in.
    window_start: float
    seconds: float
    out: str


# --- the load processes ---------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of ``values`` (ms), ``None`` for each when there are none."""
    if not values:
        return dict.fromkeys(("p50", "p90", "p99", "max"))
    ordered = sorted(values)  # percentile sorts again, in linear time on sorted input
    return {
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
    }


def client_figures(clients: list[Client], seconds: float, *, resyncs_before: dict[int, int]) -> dict[str, Any]:
    latencies = array("d")
    for client in clients:
        latencies.extend(client.latencies)
    return {
        "clients": len(clients),
        "resyncs": sum(client.resyncs - resyncs_before[id(client)] for client in clients),
        "updates_per_s_each": sum(client.frames for client in clients) / seconds / max(1, len(clients)),
        "rows_per_s": len(latencies) / seconds,
        "mib_per_s": sum(client.bytes for client in clients) / 2**20 / seconds,
        **spread(latencies),
    }


def stage_figures(clients: list[Client], name: str) -> dict[str, float | None]:
    values = array("d")
    for client in clients:
        values.extend(getattr(client, name))
    return spread(values)


async def watch_chain(config: LoadConfig) -> dict[str, Any]:
    """100 viewers of the BTC chain; announces the window on stdout once they are all in, and measures it."""
    import aiohttp

    base_ws = "ws" + config["base_url"].removeprefix("http")
    chain_view = f"?expiry={config['expiry']}&settle={config['settle']}"
    clients = [
        Client(
            f"{base_ws}/ws/chain/{ASSET}/{'' if number < WHOLE_CHAIN_CLIENTS else chain_view}",
            origin=config["base_url"],
        )
        for number in range(CLIENTS)
    ]
    async with aiohttp.ClientSession() as session:
        tasks: list[asyncio.Task[None]] = []
        for first in range(0, CLIENTS, CONNECT_BATCH):
            batch = clients[first : first + CONNECT_BATCH]
            tasks += [asyncio.create_task(client.run(session)) for client in batch]
            # A client whose handshake failed never gets its snapshot: it is counted below, not waited for.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in batch)), CONNECT_TIMEOUT)
        window_start = time.time() + WARMUP_SECONDS
        print(f"window {window_start!r}", flush=True)
        await asyncio.sleep(window_start - time.time())
        lost_before = sum(task.done() for task in tasks)
        resyncs_before = {id(client): client.resyncs for client in clients}
        for client in clients:
            client.measuring = True
        await asyncio.sleep(window_start + config["seconds"] - time.time())
        for client in clients:
            client.measuring = False
        lost = [repr(task.exception()) for task in tasks if task.done() and not task.cancelled()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    seconds = config["seconds"]
    return {
        "view": {"expiry": config["expiry"], "settle": config["settle"]},
        "all": client_figures(clients, seconds, resyncs_before=resyncs_before),
        "chain view": client_figures(clients[WHOLE_CHAIN_CLIENTS:], seconds, resyncs_before=resyncs_before),
        "flat view": client_figures(clients[:WHOLE_CHAIN_CLIENTS], seconds, resyncs_before=resyncs_before),
        "stages": {
            "exchange ts → feed received": stage_figures(clients, "feed_latencies"),
            "feed received → flush sent": stage_figures(clients, "flush_waits"),
            "flush sent → client received (per frame)": stage_figures(clients, "deliveries"),
        },
        "never_connected": sum(not client.ready.is_set() for client in clients),
        "lost_before_window": lost_before,
        "lost": lost,
    }


@dataclass
class Answer:
    """One REST request of the window: when it was due, how long after that it was answered, and how."""

    due: float
    latency_ms: float
    outcome: str  # the HTTP status, or the client's exception name
    retry_after: bool = False
    size: int = 0


async def request_chain(config: LoadConfig) -> dict[str, Any]:
    """``GET /api/options/BTC/`` ``REST_RATE`` times a second, open loop, until the window closes.

    Nothing is held back on this side (no cap on connections: an idle keep-alive one or a new one), so a
    server that queues shows it, and its 503s past ``HTTP_QUEUE_LIMIT`` can happen. Requests due before the
    window warm up and are not counted.
    """
    import aiohttp

    url = f"{config['base_url']}/api/options/{ASSET}/"
    window_end = config["window_start"] + config["seconds"]
    answers: list[Answer] = []

    async def fetch(session: aiohttp.ClientSession, due: float) -> None:
        answer = Answer(due=due, latency_ms=0.0, outcome="")
        try:
            async with session.get(url) as response:
                answer.size = len(await response.read())
                answer.outcome = str(response.status)
                answer.retry_after = "Retry-After" in response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            answer.outcome = type(exc).__name__
        answer.latency_ms = (time.time() - due) * 1000
        if due >= config["window_start"]:
            answers.append(answer)

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REST_TIMEOUT)
    headers = {"Accept": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        pending: set[asyncio.Task[None]] = set()
        due = time.time()
        while due < window_end:
            await asyncio.sleep(max(0.0, due - time.time()))
            task = asyncio.create_task(fetch(session, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            due += 1 / REST_RATE
        await asyncio.gather(*pending)
    outcomes = Counter(answer.outcome for answer in answers)
    ok = [answer for answer in answers if answer.outcome == "200"]
    return {
        "due": len(answers),
        "seconds": config["seconds"],
        "outcomes": dict(outcomes),
        "shed_with_retry_after": sum(a.retry_after for a in answers if a.outcome == "503"),
        "ok_kib": statistics.mean(a.size for a in ok) / 1024 if ok else None,
        "ok": spread([answer.latency_ms for answer in ok]),
        "all": spread([answer.latency_ms for answer in answers]),
    }


def run_load(config_json: str) -> None:
    """A load process's body (``load_process`` starts it): run one role, write its figures to ``out``."""
    config: LoadConfig = json.loads(config_json)
    load = watch_chain(config) if config["role"] == "websocket" else request_chain(config)
    figures = asyncio.run(load)
    Path(config["out"]).write_bytes(orjson.dumps(figures))


def load_process(config: LoadConfig, *, log: IO[bytes]) -> subprocess.Popen[bytes]:
    code = "import sys; from tests.benchmarks.bench_load import run_load; run_load(sys.argv[1])"
    args = devstack.tied_to_launcher([sys.executable, "-c", code, json.dumps(config)])
    return subprocess.Popen(args, cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=log)


def announced_window(process: subprocess.Popen[bytes], log: IO[bytes]) -> float:
    """The window's start, as the WebSocket process prints it once its clients are in."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(b"window "):
            return float(line.split()[1])
        log.write(line)
    raise SystemExit(f"the WebSocket clients' process ended (code {process.wait()}) before its window; see {LOGS}")


# --- the stack ------------------------------------------------------------------------------------


@contextlib.contextmanager
def demo_stack(env: dict[str, str], *, port: int, log: TextIO) -> Iterator[devstack.Stack]:
    """``make demo``'s processes, as devstack starts them, stopped with SIGTERM on the way out."""
    stack = devstack.Stack(env, output=log)
    try:
        # Its "open http://…; Ctrl-C stops everything" line is for a person at a terminal: to the log.
        with contextlib.redirect_stdout(log):
            devstack.start_whole_stack(stack, mode="demo", host=HOST, port=port)
        yield stack
    finally:
        stack.stop(timeout=devstack.STOP_TIMEOUT)
        if stack.listener is not None:
            stack.listener.close()


def demo_simulator(stack: devstack.Stack) -> SimulatorProcess:
    """The demo's simulator, controlled over its HTTP routes like any simulator process."""
    from ingest.simulator.runner import SimulatorProcess

    return SimulatorProcess(
        process=stack.processes["simulator"],  # type: ignore[arg-type]
        rest_url=stack.env["BYBIT_REST_URL"],
        ws_url=stack.env["BYBIT_WS_URL"],
    )


def live_contracts(stack: devstack.Stack, simulator: SimulatorProcess, base_url: str) -> dict[str, int]:
    """Once ``/api/health/`` is 200 and every feed subscribed to all its asset's listing: contracts per asset."""
    from ingest.status import read_feed_status
    from optionsite.redis_client import redis_connection

    client = redis_connection()
    deadline = time.monotonic() + STACK_LIVE_TIMEOUT
    while time.monotonic() < deadline:
        exited = [name for name, process in stack.processes.items() if process.poll() is not None]
        if exited:
            raise SystemExit(f"{', '.join(exited)} exited while the stack started; see {LOGS / 'stack.log'}")
        with contextlib.suppress(OSError):
            listed: dict[str, int] = simulator.state()["live_symbols"]
            statuses = {asset: read_feed_status(client, asset) for asset in ASSETS}
            if healthy(base_url) and all(s and s.subscribed == listed[a] for a, s in statuses.items()):
                return {asset: listed[asset] for asset in ASSETS}
        time.sleep(1)
    raise SystemExit(f"the stack was not live within {STACK_LIVE_TIMEOUT:.0f} s; see {LOGS / 'stack.log'}")


def page_view(base_url: str) -> tuple[str, str]:
    """The view the chain page opens on (chain/static/chain/app.js): the nearest expiry to come, in USDT
    unless that expiry has no USDT contract."""
    with urllib.request.urlopen(f"{base_url}/api/expiries/{ASSET}/", timeout=10) as response:
        expiries = json.loads(response.read())["data"]
    nearest = next((e for e in expiries if e["seconds_to_expiry"] > 0), expiries[0])
    by_settle = nearest["contracts_by_settle"]
    settle = "USDT" if by_settle.get("USDT") else max(by_settle, key=by_settle.get)
    return nearest["expiry"], settle


# --- the window -----------------------------------------------------------------------------------


@dataclass
class Traced(Watched):
    """A watched process whose RSS is also kept sample by sample, to see whether it grows."""

    rss: list[int] = field(default_factory=list)

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.rss.append(self.process.memory_info().rss)
            self.peak_rss = max(self.peak_rss, self.rss[-1])


@dataclass
class Window:
    """What this process measured over the window."""

    seconds: float
    load_average: float
    watched: list[Watched]
    redis_cpu: float
    sent_per_s: float
    received_per_s: dict[str, float]
    freshness: dict[str, float]
    feed_lag_p99_ms: dict[str, float | None]
    machine_busy: float  # cores the whole machine kept busy, ours and anyone else's
    machine_steal: float  # cores the hypervisor ran something else on instead (a VM's "steal")


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds since boot the whole machine spent busy, and those taken from it by its hypervisor."""
    times = psutil.cpu_times()
    steal = getattr(times, "steal", 0.0)
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - steal, steal


def measure_window(*, start: float, seconds: float, watched: list[Watched], simulator: SimulatorProcess) -> Window:
    """From ``start`` (epoch seconds) for ``seconds``: RSS and the feeds' own lag once a second, CPU over it all."""
    from ingest.status import read_feed_status
    from optionsite.redis_client import redis_connection

    client = redis_connection()
    received = received_total(list(ASSETS))
    sampler = FreshnessSampler(list(ASSETS))
    sampler.start()
    lag_p99: dict[str, float | None] = dict.fromkeys(ASSETS)
    time.sleep(max(0.0, start - time.time()))
    load_average = os.getloadavg()[0]
    for item in watched:
        item.start()
    redis_before, sent_before, received_before = redis_cpu(client), simulator.messages_sent(), received()
    busy_before, steal_before = machine_cpu_seconds()
    sampler.measuring = True
    started = time.monotonic()
    for tick in range(1, int(seconds) + 1):
        time.sleep(max(0.0, started + tick - time.monotonic()))
        for item in watched:
            item.sample()
        for asset in ASSETS:
            status = read_feed_status(client, asset)
            if status is not None and status.lag_p99_ms is not None:
                lag_p99[asset] = max(lag_p99[asset] or 0.0, status.lag_p99_ms)
    elapsed = time.monotonic() - started
    sampler.stop()
    for item in watched:
        item.finish(elapsed)
    received_after = received()
    return Window(
        seconds=elapsed,
        load_average=load_average,
        watched=watched,
        redis_cpu=(redis_cpu(client) - redis_before) / elapsed,
        machine_busy=(machine_cpu_seconds()[0] - busy_before) / elapsed,
        machine_steal=(machine_cpu_seconds()[1] - steal_before) / elapsed,
        sent_per_s=(simulator.messages_sent() - sent_before) / elapsed,
        received_per_s={asset: (received_after[asset] - received_before[asset]) / elapsed for asset in ASSETS},
        freshness=sampler.figures(),
        feed_lag_p99_ms=lag_p99,
    )


# --- the summary ----------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:,.0f} ms"


def against(value: float | None, target: float) -> str:
    return "n/a (nothing measured)" if value is None else "met" if value <= target else "missed"


def latency_line(label: str, figures: dict[str, Any]) -> str:
    return (
        f"  {label}: p50 {ms(figures['p50'])}, p90 {ms(figures['p90'])}, p99 {ms(figures['p99'])}, "
        f"max {ms(figures['max'])}"
    )


def print_viewers(viewers: dict[str, Any]) -> None:
    view = viewers["view"]
    print(f"WebSocket /ws/chain/{ASSET}/, exchange ts → client received (target p99 ≤ {WS_P99_TARGET_MS:.0f} ms):")
    for group in ("all", "chain view", "flat view"):
        figures = viewers[group]
        label = group if group != "chain view" else f"chain view ({view['expiry']} {view['settle']})"
        label = f"{label}, {figures['clients']} clients"
        print(
            f"{latency_line(label, figures)} -> "
            f"{against(figures['p99'], WS_P99_TARGET_MS)}; {figures['updates_per_s_each']:.1f} updates/s each, "
            f"{figures['rows_per_s']:,.0f} rows/s, {figures['mib_per_s']:.1f} MiB/s, "
            f"{figures['resyncs']} resync snapshots"
        )
    for stage, figures in viewers["stages"].items():
        print(f"    stage {stage}: p50 {ms(figures['p50'])}, p99 {ms(figures['p99'])}")
    lost = viewers["lost"]
    print(
        f"  never connected {viewers['never_connected']}; "
        f"closed or dropped {len(lost)} ({viewers['lost_before_window']} before the window) {lost[:3]}"
    )


def print_requests(requests: dict[str, Any]) -> None:
    outcomes: dict[str, int] = requests["outcomes"]
    shed = outcomes.get("503", 0)
    others = {outcome: count for outcome, count in outcomes.items() if outcome not in ("200", "503")}
    size = f", {requests['ok_kib']:,.0f} KiB each" if requests["ok_kib"] else ""
    print(
        f"REST GET /api/options/{ASSET}/, open loop {REST_RATE:.0f} req/s "
        f"(targets p99 ≤ {REST_P99_TARGET_MS:.0f} ms, no 503):"
    )
    print(
        f"  {requests['due']} due ({requests['due'] / requests['seconds']:.1f}/s), {outcomes.get('200', 0)} "
        f"answered 200{size}; 503: {shed} ({requests['shed_with_retry_after']} with Retry-After) -> "
        f"{'met' if not shed else 'missed'}; other answers: {others or 'none'}"
    )
    print(
        f"{latency_line('200s, from when due', requests['ok'])} -> {against(requests['ok']['p99'], REST_P99_TARGET_MS)}"
    )
    print(latency_line("every answer, from when due", requests["all"]))


def print_memory(web: list[Traced]) -> None:
    print(f"web RSS, once a second (target: last third's median within {RSS_TOLERANCE:.0%} of the first third's):")
    for item in web:
        third = max(1, len(item.rss) // 3)
        first, last = statistics.median(item.rss[:third]), statistics.median(item.rss[-third:])
        print(
            f"  {item.name}: peak {item.peak_rss / 2**20:.0f} MiB; median first third {first / 2**20:.1f} MiB, "
            f"last third {last / 2**20:.1f} MiB ({(last - first) / first:+.1%}); {len(item.rss)} samples"
        )


def print_cpu(window: Window) -> None:
    shares = {item.name: item.cpu for item in window.watched}
    shares["redis"] = window.redis_cpu
    groups = {
        "feeds": sum(cpu for name, cpu in shares.items() if name.startswith("feeds")),
        "web": sum(cpu for name, cpu in shares.items() if name.startswith("web")),
        "clients": sum(cpu for name, cpu in shares.items() if name.startswith("load")),
    }
    print(
        f"CPU over the window (cores; {os.cpu_count()} in all): "
        + ", ".join(f"{name} {cpu:.2f}" for name, cpu in shares.items())
    )
    print(
        "  together: "
        + ", ".join(f"{name} {cpu:.2f}" for name, cpu in groups.items())
        + f"; everything {sum(shares.values()):.2f}; the machine was busy {window.machine_busy:.2f} "
        f"({window.machine_busy - sum(shares.values()):.2f} outside this benchmark's processes), "
        f"its hypervisor took {window.machine_steal:.2f}"
    )


def print_summary(
    *, machine: str, contracts: dict[str, int], window: Window, viewers: dict[str, Any], requests: dict[str, Any]
) -> None:
    total = sum(contracts.values())
    received = sum(window.received_per_s.values())
    print(machine)
    print(
        f"contracts: {', '.join(f'{asset} {count:,}' for asset, count in contracts.items())} = {total:,}; "
        f"{PUSHES_PER_SECOND * total:,} msg/s offered, sent {window.sent_per_s:,.0f}/s, "
        f"the feeds received {received:,.0f}/s; window {window.seconds:.0f} s after {WARMUP_SECONDS} s warm-up, "
        f"load average at its start {window.load_average:.2f}"
    )
    print_viewers(viewers)
    print_requests(requests)
    print_memory([item for item in window.watched if isinstance(item, Traced)])
    print_cpu(window)
    lags = ", ".join(f"{asset} {ms(lag)}" for asset, lag in window.feed_lag_p99_ms.items())
    print(
        f"feed freshness, exchange ts → visible in Redis: sampled p50 {ms(window.freshness['freshness_p50_ms'])}, "
        f"p99 {ms(window.freshness['freshness_p99_ms'])}; the feeds' own lag p99, highest reading: {lags}"
    )


# --- the run --------------------------------------------------------------------------------------


def run(env: dict[str, str], *, seconds: float, directory: Path, machine: str) -> None:
    port = devstack.free_port()
    base_url = f"http://{HOST}:{port}"
    LOGS.mkdir(parents=True, exist_ok=True)
    devstack.manage(env, "migrate", "--noinput", "-v0")
    with (
        (LOGS / "stack.log").open("w") as stack_log,
        (LOGS / "load.log").open("wb") as load_log,
        demo_stack(env, port=port, log=stack_log) as stack,
    ):
        simulator = demo_simulator(stack)
        contracts = live_contracts(stack, simulator, base_url)
        expiry, settle = page_view(base_url)
        print(f"stack live at {base_url}: {', '.join(stack.processes)}; clients connecting", flush=True)
        config: LoadConfig = {
            "role": "websocket",
            "base_url": base_url,
            "expiry": expiry,
            "settle": settle,
            "window_start": 0.0,
            "seconds": seconds,
            "out": str(directory / "websocket.json"),
        }
        loads = {"load, WebSocket clients": load_process(config, log=load_log)}
        try:
            start = announced_window(loads["load, WebSocket clients"], load_log)
            rest: LoadConfig = {**config, "role": "rest", "window_start": start, "out": str(directory / "rest.json")}
            loads["load, REST"] = load_process(rest, log=load_log)
            watched = [
                (Traced if name.startswith("web") else Watched)(name, psutil.Process(process.pid))
                for name, process in stack.processes.items()
            ]
            watched += [Watched(name, psutil.Process(process.pid)) for name, process in loads.items()]
            watched.append(Watched("this process", psutil.Process()))
            print(f"measuring {seconds:.0f} s after {WARMUP_SECONDS} s warm-up", flush=True)
            window = measure_window(start=start, seconds=seconds, watched=watched, simulator=simulator)
            for name, process in loads.items():
                if process.wait(timeout=REST_TIMEOUT + 30) != 0:
                    raise SystemExit(f"{name} ended with code {process.returncode}; see {LOGS / 'load.log'}")
        finally:
            for process in loads.values():
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=10)
    print_summary(
        machine=machine,
        contracts=contracts,
        window=window,
        viewers=orjson.loads((directory / "websocket.json").read_bytes()),
        requests=orjson.loads((directory / "rest.json").read_bytes()),
    )


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "60"))
    machine = machine_line()  # before the stack loads the machine
    prefix = f"bench-load-{secrets.token_hex(3)}:"
    with devstack.ensured_redis(os.environ.get("REDIS_URL")) as redis_url, TemporaryDirectory() as tmp:
        os.environ.update(
            REDIS_URL=redis_url,
            REDIS_KEY_PREFIX=prefix,
            DJANGO_SETTINGS_MODULE="optionsite.settings",
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY="bench-" + secrets.token_hex(24),
            DJANGO_ALLOWED_HOSTS=HOST,
            DATABASE_URL=f"sqlite:///{Path(tmp) / 'db.sqlite3'}",
            API_ANON_RATE="100000000/min",
            PYTHONUNBUFFERED="1",
        )
        import django

        django.setup()
        try:
            run(devstack.stack_env("demo", dict(os.environ)), seconds=seconds, directory=Path(tmp), machine=machine)
        finally:
            delete_prefix(prefix)


if __name__ == "__main__":
    main()
