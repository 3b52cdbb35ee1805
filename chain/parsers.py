"""JSON request bodies through orjson, with a fixed nesting limit (docs/api.md, "Errors")."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import IO, Any

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding  # type: ignore[attr-defined]  # not in the stubs yet


class ORJSONParser(JSONParser):
    """``application/json`` as DRF's parser reads it, but a document nested too deep is a 400.

    DRF's parser uses the standard library's, which recurses once per level of nesting: a body 100,000
    levels deep raised ``RecursionError``, a 500. orjson reads 1,024 levels and raises ``JSONDecodeError``
    ("depth limit exceeded") past them. Like DRF's parser under ``STRICT_JSON`` (its default), it refuses
    ``NaN`` and ``Infinity``; unlike it, it reads an integer beyond 64 bits as a float.
    """

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        encoding = get_encoding(parser_context or {})
        try:
            body = stream.read()
            if codecs.lookup(encoding).name != "utf-8":  # orjson reads UTF-8 bytes, or str
                body = body.decode(encoding)
            return orjson.loads(body)
        except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
