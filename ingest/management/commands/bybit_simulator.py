"""``python manage.py bybit_simulator``: the local Bybit simulator, for ``make demo``.

A thin wrapper: the options are the simulator's own (``python -m ingest.simulator --help``), the port
defaults to 8765, and SIGTERM (what the dev launcher sends) or SIGINT stop it cleanly.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ingest.simulator import add_cli_arguments, config_from_options, ready_line, serve_forever


class Command(BaseCommand):
    help = "Serve Bybit's v5 public option market data (REST + WebSocket) from a local simulated exchange."
    # The simulator needs neither the database nor Redis; starting it must not wait for their checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_cli_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        config = config_from_options(options)
        # Django's LOGGING decides where the log goes; --log-level still sets how much of it.
        logging.getLogger("ingest.simulator").setLevel(config.log_level.upper())

        def announce(rest_url: str, ws_url: str) -> None:
            self.stdout.write(ready_line(rest_url=rest_url, ws_url=ws_url))
            self.stdout.flush()

        serve_forever(config, on_ready=announce)
