"""Run every benchmark module in this package (``bench_*.py``) one after another.

Benchmarks print figures; they never fail on a slow machine. Each module exposes
``main() -> None``. ``python -m tests.benchmarks NAME`` runs only ``bench_NAME``.
"""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(selected: list[str]) -> int:
    names = sorted(
        module.name
        for module in pkgutil.iter_modules([str(Path(__file__).parent)])
        if module.name.startswith("bench_") and (not selected or module.name.removeprefix("bench_") in selected)
    )
    if not names:
        print("no benchmarks to run yet" if not selected else f"no benchmark named {', '.join(selected)}")
        return 0 if not selected else 2
    for name in names:
        print(f"== {name}", flush=True)
        importlib.import_module(f"tests.benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
