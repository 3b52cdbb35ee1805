"""Faults on demand: the switches the server consults, and the malformed frames it can inject.

Timed faults (refuse, stall) are deadlines on the monotonic clock, so they end by themselves.
Malformed frames are what a consumer must survive without dying: text that is not JSON (pybit's
``json.loads`` raises and its socket dies, whatever the callback), a JSON object with no ``topic``
(pybit's default handler dies on it with ``KeyError: 'topic'``, reference §6.6; a ``callback_function``
sees it), a ticker with fields missing, a ticker whose numbers are not numbers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ingest.simulator.config import MALFORMED_KINDS, MalformedKind, PongWithholding, SimulatorConfig
from ingest.simulator.frames import ticker_message

# Values a careless parser turns into a crash or a NaN.
NON_NUMERIC_VALUES: tuple[Any, ...] = ("", "abc", "NaN", "--", None, "1,5")
NUMERIC_FIELDS = (
    "bidPrice",
    "bidSize",
    "bidIv",
    "askPrice",
    "askSize",
    "askIv",
    "lastPrice",
    "markPrice",
    "indexPrice",
    "markPriceIv",
    "underlyingPrice",
    "openInterest",
    "delta",
    "gamma",
    "vega",
    "theta",
)


class Faults:
    """The fault switches of one simulator; read and written on its event loop only."""

    def __init__(self, *, config: SimulatorConfig) -> None:
        self.rng = random.Random(f"{config.seed}:faults")
        self.refuse_mode = config.refuse_mode
        self.refuse_until = 0.0
        self.stall_until = 0.0
        self.drop_every = config.drop_every
        self.close_every = config.close_every
        self.close_code = config.close_code
        self.withhold_pongs = config.withhold_pongs
        self.withhold_pong_kind: PongWithholding = config.withhold_pong_kind
        self.malformed_rate = config.malformed_rate
        self.malformed_kinds: tuple[MalformedKind, ...] = tuple(config.malformed_kinds)
        self.rest_delay = config.rest_delay
        self.injected: Counter[str] = Counter()

    def clear(self) -> None:
        self.refuse_until = self.stall_until = 0.0
        self.drop_every = self.close_every = 0.0
        self.withhold_pongs = False
        self.malformed_rate = 0.0
        self.rest_delay = 0.0

    # --- timed faults -------------------------------------------------------------------------------

    def refuse_for(self, seconds: float) -> None:
        self.refuse_until = time.monotonic() + _non_negative(seconds, "seconds")

    def stall_for(self, seconds: float) -> None:
        self.stall_until = time.monotonic() + _non_negative(seconds, "seconds")

    def refusing(self) -> bool:
        return time.monotonic() < self.refuse_until

    def stalled(self) -> bool:
        return time.monotonic() < self.stall_until

    async def wait_unstalled(self) -> None:
        while (left := self.stall_until - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    def withholds_json_pong(self) -> bool:
        return self.withhold_pongs and self.withhold_pong_kind in ("both", "json")

    def withholds_control_pong(self) -> bool:
        return self.withhold_pongs and self.withhold_pong_kind in ("both", "control")

    def set_withhold_pongs(self, *, enabled: bool, kind: str | None = None) -> None:
        if kind is not None:
            if kind not in ("both", "json", "control"):
                raise ValueError("kind: both, json or control")
            self.withhold_pong_kind = kind  # type: ignore[assignment]
        self.withhold_pongs = enabled

    def set_malformed(self, *, rate: float, kinds: Iterable[str] | None = None) -> None:
        if not 0 <= rate <= 1:
            raise ValueError("rate: between 0 and 1")
        if kinds is not None:
            chosen = tuple(kinds)
            unknown = set(chosen) - set(MALFORMED_KINDS)
            if unknown or not chosen:
                raise ValueError(f"kinds: some of {', '.join(MALFORMED_KINDS)}")
            self.malformed_kinds = chosen  # type: ignore[assignment]
        self.malformed_rate = rate

    # --- malformed frames ---------------------------------------------------------------------------

    def malformed_payload(self, *, symbol: str, fields: Mapping[str, str], seq: int, ts_ms: int) -> bytes:
        """A payload of a randomly chosen malformed kind, built around a real ticker of ``symbol``."""
        kind = self.rng.choice(self.malformed_kinds)
        self.injected[kind] += 1
        rng = self.rng
        if kind == "bad_json":
            whole = ticker_message(symbol=symbol, data=fields, seq=seq, ts_ms=ts_ms)
            return whole[: rng.randint(1, len(whole) - 1)]
        if kind == "unknown_shape":
            # JSON objects only: pybit calls message.get() on every frame, so an array or a bare string
            # would kill it like bad JSON does, before any callback could look at it.
            shapes: list[dict[str, Any]] = [
                {"hello": "unknown", "ts": ts_ms},
                {"type": "snapshot", "ts": ts_ms, "payload": {"symbol": symbol}},
                {"op": "notice", "args": ["maintenance"]},
                {"success": True, "data": {"symbol": symbol}},
            ]
            return orjson.dumps(rng.choice(shapes))
        data = dict(fields)
        if kind == "missing_fields":
            for name in rng.sample([name for name in data if name != "symbol"], rng.randint(1, 6)):
                del data[name]
            message = orjson.loads(ticker_message(symbol=symbol, data=data, seq=seq, ts_ms=ts_ms))
            if rng.random() < 0.2:
                del message[rng.choice(["ts", "data", "id"])]
            return orjson.dumps(message)
        for name in rng.sample(NUMERIC_FIELDS, rng.randint(1, 3)):
            data[name] = rng.choice(NON_NUMERIC_VALUES)
        return ticker_message(symbol=symbol, data=data, seq=seq, ts_ms=ts_ms)

    def as_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "refuse_mode": self.refuse_mode,
            "refusing_for": max(self.refuse_until - now, 0.0),
            "stalled_for": max(self.stall_until - now, 0.0),
            "drop_every": self.drop_every,
            "close_every": self.close_every,
            "withhold_pongs": self.withhold_pongs,
            "withhold_pong_kind": self.withhold_pong_kind,
            "malformed_rate": self.malformed_rate,
            "malformed_kinds": list(self.malformed_kinds),
            "malformed_injected": dict(self.injected),
            "rest_delay": self.rest_delay,
        }


def _non_negative(value: float, name: str) -> float:
    number = float(value)
    if number < 0 or number != number:
        raise ValueError(f"{name}: >= 0")
    return number
