"""JSON through orjson (the full chain is ~800 rows), and CSV for ``/api/options/<ASSET>/?format=csv``."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

from chain.rows import ROW_FIELDS, RowList

_fallback_encoder = JSONEncoder()


def _default(value: Any) -> Any:
    if isinstance(value, RowList):
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
        return orjson.dumps(data, default=_default, option=options)


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
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(ROW_FIELDS)
        for row in rows:
            writer.writerow([_csv_value(row.get(name)) for name in ROW_FIELDS])
        return buffer.getvalue().encode()


def _csv_value(value: Any) -> Any:
    """Empty for null; ``true``/``false`` as in the JSON (Python would write ``True``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
