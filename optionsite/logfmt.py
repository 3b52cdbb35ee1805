"""One log line per event: time, level, logger, message, then the context it concerns."""

from __future__ import annotations

import logging

# Keys a caller may pass through ``extra=`` to say which asset or contract a line is about.
CONTEXT_KEYS = ("asset", "contract", "connection")


class LineFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(fmt="%(asctime)s %(levelname)s %(name)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in CONTEXT_KEYS if hasattr(record, key))
        if context:
            line = f"{line} [{context}]"
        # A traceback stays part of its event's line, so that log shippers see one event.
        return line.replace("\n", " | ")
