"""``python -m ingest.simulator [options]``: serve until SIGTERM/SIGINT (see ``--help``)."""

from __future__ import annotations

import logging
import sys

from ingest.simulator.config import parse_cli
from ingest.simulator.runner import ready_line, serve_forever


def main(argv: list[str] | None = None) -> None:
    config = parse_cli(argv)
    # The log goes to stderr; stdout carries only the ready line, which run_simulator_process waits for.
    logging.basicConfig(stream=sys.stderr, level=config.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    serve_forever(config, on_ready=lambda rest, ws: print(ready_line(rest_url=rest, ws_url=ws), flush=True))


if __name__ == "__main__":
    main()
