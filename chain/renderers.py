"""JSON through orjson (the full chain is ~800 rows), CSV for ``/api/options/<ASSET>/?format=csv``, and the
browsable API, which shows the first rows of a long list only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

from chain.rows import RowView, rows_csv

_fallback_encoder = JSONEncoder()


def _default(value: Any) -> Any:
    if isinstance(value, RowView):
        return orjson.Fragment(value.json())
    # Lazy translations, Decimals, querysets...: whatever orjson does not know, DRF's encoder does.
    return _fallback_encoder.default(value)


class ORJSONRenderer(JSONRenderer):
    """``application/json`` like DRF's renderer (indent included, for the browsable API), ~10x faster."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        if data is None:
            return b""
        options = orjson.OPT_NON_STR_KEYS
        if self.get_indent(accepted_media_type or "", renderer_context or {}):
            options |= orjson.OPT_INDENT_2
        else:
            parts = envelope_parts(data)
            if parts is not None:
                return b"".join(parts)
        return orjson.dumps(data, default=_default, option=options)


def envelope_parts(data: Any) -> list[bytes] | None:
    """``data``'s JSON in parts when it ends with a ``data`` list of rows (a ``RowView``): the envelope, the
    rows' own bytes, the closing brace. The rows are copied once by whoever joins or sends the parts, not
    grown into orjson's buffer as a ``Fragment`` would be (a third of a replayed answer's cost)."""
    if not (isinstance(data, dict) and isinstance(data.get("data"), RowView) and next(reversed(data)) == "data"):
        return None
    head = orjson.dumps({name: value for name, value in data.items() if name != "data"}, option=orjson.OPT_NON_STR_KEYS)
    return [head[:-1] + (b',"data":' if len(head) > 2 else b'"data":'), data["data"].json(), b"}"]


class CSVRenderer(JSONRenderer):
    """The rows of an ``{"data": [...]}`` envelope as CSV: one header line, then one line per contract.

    Columns are the row's fields in their JSON order; a null is an empty cell. It derives
    from ``JSONRenderer`` only to share ``get_indent``; its media type is ``text/csv``.
    """

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        rows = data.get("data", []) if isinstance(data, Mapping) else []
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code < 400 and isinstance(data, Mapping) and "asset" in data:
            response["Content-Disposition"] = f'attachment; filename="{data["asset"]}-options.csv"'
        return rows.csv() if isinstance(rows, RowView) else rows_csv(rows)  # a view's once per state of the chain


# Rows the browsable API shows of a list: a person exploring the API reads a few; the full BTC chain (778 rows)
# took 1.7 s to render there (median of 24, issue #13), pretty-printed and highlighted into the page.
BROWSABLE_ROWS = 50


class ShortBrowsableAPIRenderer(BrowsableAPIRenderer):
    """DRF's browsable API, showing the first ``BROWSABLE_ROWS`` entries of an answer's ``data`` list and saying
    how many there are and where the whole answer is. Only the page is cut: JSON and CSV stay complete."""

    def get_content(
        self, renderer: Any, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> str:
        return super().get_content(renderer, shortened(data), accepted_media_type, renderer_context)


def shortened(data: Any) -> Any:
    """``data`` with at most ``BROWSABLE_ROWS`` entries of its ``data`` list, and a note first when it had more."""
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), list | RowView):
        return data
    entries = data["data"]
    if len(entries) <= BROWSABLE_ROWS:
        return data
    first = list(entries.rows if isinstance(entries, RowView) else entries)[:BROWSABLE_ROWS]
    note = (
        f"The browsable API shows the first {BROWSABLE_ROWS} of {len(entries)} entries; "
        "?format=json (or Accept: application/json) gives them all."
    )
    return {"browsable_api": note, **data, "data": first}
