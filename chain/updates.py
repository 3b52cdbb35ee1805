"""A ``chain.update``'s rows in each view, put together once per event and view and shared by every connection
of the process in that view (most watch one of a few: the page shows one expiry and settle coin at a time).
"""

from __future__ import annotations

from collections import OrderedDict

from chain.messages import MAX_ROWS_PER_FRAME, ChainView
from ingest.events import ChainUpdate, ChangedRow

# The rows in a view are picked out and joined once per update and view, and shared; the least recently used
# are forgotten. Filtering and encoding per connection were half of daphne's time fanning updates out to 100
# connections (docs/benchmarks.md).
MAX_SHARED_UPDATES = 16
_update_rows: OrderedDict[tuple[str, str | None, str | None], list[bytes]] = OrderedDict()


def update_rows_json(event: ChainUpdate, view: ChainView) -> list[bytes]:
    """The update's rows in ``view`` as JSON arrays of at most ``MAX_ROWS_PER_FRAME`` rows each
    (none when no row is in the view), put together once per event and view in this process from the
    rows' own JSON (``ingest.events.ChangedRow``)."""
    key = (event["id"], view["expiry"], view["settle"])
    chunks = _update_rows.get(key)
    if chunks is not None:
        _update_rows.move_to_end(key)
    else:
        rows = changed_rows_in_view(event["rows"], view)
        chunks = [
            b"[" + b",".join(rows[start : start + MAX_ROWS_PER_FRAME]) + b"]"
            for start in range(0, len(rows), MAX_ROWS_PER_FRAME)
        ]
        _update_rows[key] = chunks
        if len(_update_rows) > MAX_SHARED_UPDATES:
            _update_rows.popitem(last=False)
    return chunks


def changed_rows_in_view(changed: list[ChangedRow], view: ChainView) -> list[bytes]:
    """The JSON of an update's rows in ``view``."""
    expiry, settle = view["expiry"], view["settle"]
    return [
        row_json
        for row_expiry, row_settle, row_json in changed
        if (expiry is None or row_expiry == expiry) and (settle is None or row_settle == settle)
    ]
