"""A contract's row as the API serves it: the ingest's ``ContractRow``, exactly as stored.

Rows are plain dicts, decoded from the JSON the ingest stores and shared between requests
(``chain.readers`` keeps the last decoded chain): never change one in place. A row carries
no per-request field (an answer's own time is its envelope's ``ts``), so an answer's rows
are a function of the chain's state alone: a ``RowView`` (a filtered and ordered list of
rows) is computed once per state of the chain (``chain.readers.DecodedChain``), and so are
its JSON, written from the stored JSON without encoding ~800 rows of ~35 fields again, and
its CSV. Every request that finds the chain unchanged shares those bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ingest.normalize import ContractRow

Row = dict[str, Any]
ROW_FIELDS: tuple[str, ...] = tuple(ContractRow.__annotations__)


class RowView:
    """Rows in answer order, shared by the requests that ask for them while the chain is unchanged.

    ``stored_json`` maps each symbol to the row's JSON as the ingest stored it (an object).
    """

    def __init__(self, rows: Sequence[Row], *, stored_json: Mapping[str, bytes]) -> None:
        self.rows = rows
        self.stored_json = stored_json
        self._json: bytes | None = None
        self._csv: bytes | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def json(self) -> bytes:
        """The rows as a JSON array: the stored JSON of each, joined once (~700 KiB for the full BTC chain)."""
        if self._json is None:
            stored = self.stored_json
            self._json = b"[" + b",".join([stored[row["symbol"]] for row in self.rows]) + b"]"
        return self._json

    def csv(self) -> bytes:
        """The rows as CSV: one header line of ``ROW_FIELDS``, then one line per row; a null is an empty cell."""
        if self._csv is None:
            self._csv = rows_csv(self.rows)
        return self._csv


def rows_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """One header line of ``ROW_FIELDS``, then one line per row; a null is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ROW_FIELDS)
    for row in rows:
        writer.writerow([csv_value(row.get(name)) for name in ROW_FIELDS])
    return buffer.getvalue().encode()


def csv_value(value: Any) -> Any:
    """Empty for null; ``true``/``false`` as in the JSON (Python would write ``True``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
