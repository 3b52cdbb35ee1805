"""drf-spectacular hooks."""

from __future__ import annotations

from typing import Any


def drop_slashless_duplicates(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """Document each route once, with its trailing slash; the slashless twin answers the same."""
    return [endpoint for endpoint in endpoints if endpoint[0].endswith("/")]


def document_throttling(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every operation but the health checks may answer 429 to an anonymous client over its rate."""
    for path, operations in result.get("paths", {}).items():
        if path.startswith("/api/health/"):
            continue
        for operation in operations.values():
            operation["responses"].setdefault(
                "429",
                {
                    "description": "Too many requests from this anonymous client (API_ANON_RATE); retry later.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
    return result


def document_unsupported_media_types(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every operation that takes a body answers 415 to one sent as a content type it does not parse."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if "requestBody" not in operation:
                continue
            accepted = ", ".join(operation["requestBody"].get("content", {})) or "none"
            operation["responses"].setdefault(
                "415",
                {
                    "description": f"The body's Content-Type is missing or not one of: {accepted}.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
    return result
