"""What a simulator run is told: one dataclass, and the command line that fills it.

The same options serve ``python -m ingest.simulator`` and ``python manage.py bybit_simulator``;
:func:`config_to_argv` turns a config back into them so a subprocess can be started from a config.
Every protocol choice the reference marks UNCONFIRMED is a field here.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

MalformedKind = Literal["bad_json", "unknown_shape", "missing_fields", "non_numeric"]
MALFORMED_KINDS: tuple[MalformedKind, ...] = ("bad_json", "unknown_shape", "missing_fields", "non_numeric")
OverLimitReply = Literal["command_resp", "ret_msg", "close"]
RefuseMode = Literal["reset", "http503"]
PongWithholding = Literal["both", "json", "control"]
SlowReaderPolicy = Literal["disconnect", "skip"]
SLOW_READER_POLICIES: tuple[SlowReaderPolicy, ...] = ("disconnect", "skip")

DEFAULT_PORT = 8765


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """One simulator run. ``port=0`` picks a free port (the runners report the one chosen)."""

    host: str = "127.0.0.1"
    port: int = 0
    assets: tuple[str, ...] = ("BTC", "ETH", "SOL")
    seed: int = 1
    # Bybit pushes an option ticker every 100 ms (reference §2).
    rate_hz: float = 10.0
    # How often the whole market is re-priced; frames between two re-pricings reuse the encoded data.
    # None = 1 Hz, or 0 (never) in bench mode.
    reprice_hz: float | None = None
    # A subscription's pushes are spread over this many slots per period instead of one burst.
    push_slices: int = 4
    symbols_file: Path | None = None
    # List Bybit's expiry ladder (dailies, weeklies, ...) on top of the file's contracts; off, a
    # symbols file is the whole universe (the benchmarks' exact 2,000 contracts).
    list_ladder: bool = True
    # Simulated seconds per real second; drives listing, delivery and time to expiry only.
    speed: float = 1.0
    # Simulated start time; None = now, or with a symbols file the noon before its earliest expiry.
    start: datetime | None = None
    # Bench mode: frames pre-encoded in `bench_variants` versions and cycled, no re-pricing or trades;
    # rate_hz=0 then means "as fast as the socket drains".
    bench: bool = False
    bench_variants: int = 8
    publish_trades: bool = True
    no_quote_probability: float = 0.04
    # WebSocket limits (reference §1.4).
    max_topics_per_connection: int = 2000
    max_args_chars: int = 21000
    over_limit_reply: OverLimitReply = "command_resp"
    fail_reply_ret_msg: bool = False
    duplicate_topic_fails: bool = False
    pong_conn_id: bool = True
    # What becomes of a reader that falls behind (Bybit's behaviour is not documented, docs/simulator.md):
    # "disconnect" queues its pushes and drops it once its backlog is older than max_backlog_seconds;
    # "skip" leaves it out of a push while its socket buffer holds more than max_write_buffer bytes.
    slow_reader: SlowReaderPolicy = "disconnect"
    max_backlog_seconds: float = 5.0
    max_write_buffer: int = 4 * 1024 * 1024
    # REST (reference §4.4): 600 requests per 5 s per IP, then HTTP 403.
    rest_rate_limit: int = 600
    rest_rate_window: float = 5.0
    # Faults active from the start; all can be changed at run time through the controls.
    drop_every: float = 0.0
    close_every: float = 0.0
    close_code: int = 1000
    refuse_mode: RefuseMode = "reset"
    withhold_pongs: bool = False
    withhold_pong_kind: PongWithholding = "both"
    malformed_rate: float = 0.0
    malformed_kinds: tuple[MalformedKind, ...] = MALFORMED_KINDS
    rest_delay: float = 0.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        problems = []
        if not self.assets:
            problems.append("assets: at least one base coin")
        if self.rate_hz < 0 or (self.rate_hz == 0 and not self.bench):
            problems.append("rate_hz: > 0 (0 = unlimited is for bench mode only)")
        if self.reprice_hz is not None and self.reprice_hz < 0:
            problems.append("reprice_hz: >= 0")
        if self.push_slices < 1:
            problems.append("push_slices: >= 1")
        if self.speed <= 0:
            problems.append("speed: > 0")
        if not 0 <= self.malformed_rate <= 1:
            problems.append("malformed_rate: between 0 and 1")
        if not 0 <= self.no_quote_probability <= 1:
            problems.append("no_quote_probability: between 0 and 1")
        if self.slow_reader not in SLOW_READER_POLICIES:
            problems.append(f"slow_reader: one of {', '.join(SLOW_READER_POLICIES)}")
        # Written as "not > 0" so that NaN is refused too.
        if not self.max_backlog_seconds > 0:
            problems.append("max_backlog_seconds: > 0")
        if self.bench_variants < 1:
            problems.append("bench_variants: >= 1")
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown:
            problems.append(f"malformed_kinds: unknown {sorted(unknown)}")
        if self.start is not None and self.start.tzinfo is None:
            problems.append("start: must be timezone-aware (UTC)")
        if problems:
            raise ValueError("bad simulator config: " + "; ".join(problems))
        object.__setattr__(self, "assets", tuple(asset.upper() for asset in self.assets))
        object.__setattr__(self, "malformed_kinds", tuple(self.malformed_kinds))
        if self.symbols_file is not None:
            object.__setattr__(self, "symbols_file", Path(self.symbols_file))

    @property
    def effective_reprice_hz(self) -> float:
        if self.reprice_hz is not None:
            return self.reprice_hz
        return 0.0 if self.bench else 1.0

    def with_changes(self, **changes: Any) -> SimulatorConfig:
        return replace(self, **changes)


def _assets(text: str) -> tuple[str, ...]:
    return tuple(part.strip().upper() for part in text.split(",") if part.strip())


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = set(kinds) - set(MALFORMED_KINDS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown malformed kinds {sorted(unknown)}; known: {MALFORMED_KINDS}")
    return kinds


def _start(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO datetime like 2025-09-01T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _flag(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean")


# dest, flag, type, help. The argparse defaults are taken from SimulatorConfig so there is one source.
_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("host", "--host", str, "interface to listen on"),
    ("port", "--port", int, f"port to listen on, 0 = a free port (default {DEFAULT_PORT})"),
    ("assets", "--assets", _assets, "comma-separated base coins, e.g. BTC,ETH,SOL"),
    ("seed", "--seed", int, "random seed: same seed and start, same universe and price path"),
    ("rate_hz", "--rate", float, "ticker pushes per second per subscribed contract (bench: 0 = unlimited)"),
    ("reprice_hz", "--reprice-hz", float, "market re-pricings per second (default 1; bench mode: 0)"),
    ("push_slices", "--push-slices", int, "spread each push period over this many slots"),
    ("symbols_file", "--symbols", Path, "load the instrument universe from a file of symbols, one per line"),
    ("speed", "--speed", float, "simulated seconds per real second (listing, delivery, time to expiry)"),
    ("start", "--start", _start, "simulated start time, ISO 8601 UTC"),
    ("bench_variants", "--bench-variants", int, "bench mode: pre-encoded versions of each frame, cycled"),
    ("publish_trades", "--trades", _flag, "publish publicTrade.{BASE} (true/false)"),
    ("list_ladder", "--ladder", _flag, "list Bybit's expiry ladder on top of --symbols (true/false)"),
    ("no_quote_probability", "--no-quote-probability", float, "chance a side of a quote is empty ('0')"),
    ("max_topics_per_connection", "--max-topics", int, "topics per WebSocket connection"),
    ("max_args_chars", "--max-args-chars", int, "characters of the JSON args array per request"),
    ("over_limit_reply", "--over-limit-reply", str, "command_resp | ret_msg | close"),
    ("fail_reply_ret_msg", "--fail-reply-ret-msg", _flag, "add ret_msg to a failing COMMAND_RESP (true/false)"),
    ("duplicate_topic_fails", "--duplicate-topic-fails", _flag, "a topic subscribed twice goes to failTopics"),
    ("pong_conn_id", "--pong-conn-id", _flag, "add conn_id to the JSON pong (true/false)"),
    ("slow_reader", "--slow-reader", str, "a reader that falls behind: disconnect (queue, then drop) | skip"),
    ("max_backlog_seconds", "--max-backlog-seconds", float, "disconnect mode: seconds of backlog before the drop"),
    ("max_write_buffer", "--max-write-buffer", int, "skip mode: bytes buffered for a reader before pushes skip it"),
    ("rest_rate_limit", "--rest-rate-limit", int, "REST requests per window per client IP before HTTP 403"),
    ("rest_rate_window", "--rest-rate-window", float, "REST rate window in seconds"),
    ("drop_every", "--drop-every", float, "fault: TCP-reset every WebSocket every N seconds (0 = off)"),
    ("close_every", "--close-every", float, "fault: send a close frame to every WebSocket every N s (0 = off)"),
    ("close_code", "--close-code", int, "close code for the close fault"),
    ("refuse_mode", "--refuse-mode", str, "how refused connections fail: reset | http503"),
    ("withhold_pongs", "--withhold-pongs", _flag, "fault: answer no pings (true/false)"),
    ("withhold_pong_kind", "--withhold-pong-kind", str, "which pongs to withhold: both | json | control"),
    ("malformed_rate", "--malformed-rate", float, "fault: fraction of ticker frames replaced by malformed ones"),
    ("malformed_kinds", "--malformed-kinds", _kinds, "comma-separated: " + ",".join(MALFORMED_KINDS)),
    ("rest_delay", "--rest-delay", float, "fault: seconds added to every REST answer"),
    ("log_level", "--log-level", str, "DEBUG, INFO, WARNING"),
)
_CHOICES = {
    "over_limit_reply": ("command_resp", "ret_msg", "close"),
    "refuse_mode": ("reset", "http503"),
    "withhold_pong_kind": ("both", "json", "control"),
    "slow_reader": SLOW_READER_POLICIES,
}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to a parser (argparse or a Django command's)."""
    defaults = SimulatorConfig()
    for dest, flag, kind, help_text in _OPTIONS:
        default = DEFAULT_PORT if dest == "port" else getattr(defaults, dest)
        parser.add_argument(flag, dest=dest, type=kind, default=default, help=help_text, choices=_CHOICES.get(dest))
    parser.add_argument("--bench", dest="bench", action="store_true", help="bench mode: pre-encoded frames")


def config_from_options(options: Mapping[str, Any] | argparse.Namespace) -> SimulatorConfig:
    """Build a config from parsed options; keys that are not config fields (Django's own) are ignored."""
    values = vars(options) if isinstance(options, argparse.Namespace) else dict(options)
    names = {item.name for item in fields(SimulatorConfig)}
    chosen = {key: value for key, value in values.items() if key in names and value is not None}
    return SimulatorConfig(**chosen)


def config_to_argv(config: SimulatorConfig) -> list[str]:
    """The command-line options that rebuild ``config`` (for starting a simulator subprocess)."""
    argv: list[str] = []
    for dest, flag, _kind, _help in _OPTIONS:
        value = getattr(config, dest)
        if value is None:
            continue
        if isinstance(value, tuple):
            text = ",".join(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, datetime):
            text = value.isoformat()
        else:
            text = str(value)
        argv += [flag, text]
    if config.bench:
        argv.append("--bench")
    return argv


def build_parser(prog: str = "python -m ingest.simulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="A local Bybit v5 option market-data exchange.")
    add_cli_arguments(parser)
    return parser


def parse_cli(argv: Sequence[str] | None = None) -> SimulatorConfig:
    return config_from_options(build_parser().parse_args(argv))
