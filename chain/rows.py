"""A contract's row as the API serves it: the ingest's ``ContractRow`` plus ``age``.

Rows are plain dicts, decoded from the JSON the ingest stores and shared between requests
(``chain.readers`` keeps the last decoded chain): never change one in place; ``with_age``
returns copies. The full chain is ~800 rows of ~35 fields, to be served in milliseconds,
which is why ``RowList`` writes the JSON answer from the stored JSON instead of encoding
every row again, and why a ``RowView`` (a filtered and ordered list of rows) is computed
once per state of the chain (``chain.readers.DecodedChain``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from ingest.normalize import ContractRow

Row = dict[str, Any]
ROW_FIELDS: tuple[str, ...] = (*ContractRow.__annotations__, "age")


def row_age(row: Row, *, now_ms: int) -> float | None:
    """Seconds since the row's exchange timestamp; ``None`` before its first quote."""
    ts = row["ts"]
    return None if ts is None else round(max(0, now_ms - ts) / 1000, 3)


def with_age(rows: Sequence[Row], *, now_ms: int) -> list[Row]:
    return [{**row, "age": row_age(row, now_ms=now_ms)} for row in rows]


class RowView:
    """Rows in answer order, shared by the requests that ask for them while the chain is unchanged.

    ``stored_json`` maps each symbol to the row's JSON as the ingest stored it (an object).
    """

    def __init__(self, rows: Sequence[Row], *, stored_json: Mapping[str, bytes]) -> None:
        self.rows = rows
        self.stored_json = stored_json
        self._heads: list[bytes] | None = None
        self._timestamps: list[int | None] | None = None

    def heads(self) -> list[bytes]:
        """Each row's stored JSON without its closing brace, then ``,"age":``."""
        if self._heads is None:
            self._heads = [self.stored_json[row["symbol"]][:-1] + b',"age":' for row in self.rows]
        return self._heads

    def timestamps(self) -> list[int | None]:
        if self._timestamps is None:
            self._timestamps = [row["ts"] for row in self.rows]
        return self._timestamps


class RowList:
    """A view's rows with their ``age`` at ``now_ms``, rendered as JSON or as dicts.

    The JSON is each row's stored JSON with ``"age"`` appended: the same as encoding
    ``with_age(rows)``, without encoding ~800 rows of ~35 fields again for every request.
    """

    def __init__(self, view: RowView, *, now_ms: int) -> None:
        self.view = view
        self.now_ms = now_ms

    def __len__(self) -> int:
        return len(self.view.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.dicts())

    def dicts(self) -> list[Row]:
        return with_age(self.view.rows, now_ms=self.now_ms)

    def json(self) -> bytes:
        rows = self.view.rows
        if not rows:
            return b"[]"
        now_ms = self.now_ms
        # ts and now are whole milliseconds, so orjson writes each age with at most three decimals.
        ages = [
            (now_ms - ts) / 1000 if ts is not None and ts < now_ms else None if ts is None else 0.0
            for ts in self.view.timestamps()
        ]
        # One join of head, age, "}," per row: 578 KiB for the full BTC chain, copied once.
        parts: list[bytes] = [_ROW_END] * (3 * len(rows))
        parts[0::3] = self.view.heads()
        parts[1::3] = orjson.dumps(ages)[1:-1].split(b",")
        parts[0] = b"[" + parts[0]
        parts[-1] = b"}]"
        return b"".join(parts)


_ROW_END = b"},"
