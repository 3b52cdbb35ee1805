"""A local Bybit v5 public option exchange (REST + WebSocket) for tests, the demo and benchmarks.

Pure Python on aiohttp: importing it does not need Django. Start it with
``python -m ingest.simulator``, ``python manage.py bybit_simulator``, :func:`run_simulator_in_thread`
or :func:`run_simulator_process`. See ``docs/simulator.md``.
"""

from ingest.simulator.config import MALFORMED_KINDS, SimulatorConfig, add_cli_arguments, config_from_options
from ingest.simulator.runner import (
    RunningSimulator,
    SimulatorHandle,
    SimulatorProcess,
    ready_line,
    run_simulator_in_thread,
    run_simulator_process,
    serve_forever,
    simulator_command,
)

__all__ = [
    "MALFORMED_KINDS",
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorHandle",
    "SimulatorProcess",
    "add_cli_arguments",
    "config_from_options",
    "ready_line",
    "run_simulator_in_thread",
    "run_simulator_process",
    "serve_forever",
    "simulator_command",
]
