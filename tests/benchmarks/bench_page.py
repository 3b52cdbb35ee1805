"""Page smoothness under the demo's load: frame times of the chain page in headless Chromium.

Starts the demo stack (``python -m optionsite.devstack demo``: simulator at 10 pushes/s for
BTC, ETH and SOL, worker, beat, daphne) on a free port with its own database and Redis key
prefix, opens ``/chain/BTC/`` and measures 10 s of ``requestAnimationFrame`` intervals and
long tasks (> 50 ms) in the chain view, then in the flat view of every BTC contract.

Run: ``python -m tests.benchmarks page``. Needs Debian's Chromium (``/usr/bin/chromium``).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from optionsite.devstack import free_port
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

BASE_DIR = Path(__file__).resolve().parents[2]
MEASURE = """async (seconds) => {
  const frames = [];
  const longTasks = [];
  const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => longTasks.push(e.duration)));
  observer.observe({ entryTypes: ["longtask"] });
  let last = performance.now();
  const end = last + seconds * 1000;
  await new Promise((resolve) => {
    const tick = (t) => { frames.push(t - last); last = t; t < end ? requestAnimationFrame(tick) : resolve(); };
    requestAnimationFrame(tick);
  });
  observer.disconnect();
  frames.sort((a, b) => a - b);
  const q = (p) => frames[Math.min(frames.length - 1, Math.floor(p * frames.length))];
  return { frames: frames.length, p50: q(0.5), p99: q(0.99), max: frames.at(-1),
           longTasks: longTasks.length, longestTask: Math.max(0, ...longTasks) };
}"""


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/health/", timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def report(label: str, figures: dict[str, float]) -> None:
    print(
        f"  {label}: {figures['frames']:.0f} frames in 10 s, frame p50 {figures['p50']:.1f} ms, "
        f"p99 {figures['p99']:.1f} ms, max {figures['max']:.1f} ms; "
        f"{figures['longTasks']:.0f} long tasks (longest {figures['longestTask']:.0f} ms)"
    )


def main() -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PORT": str(port),
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'db.sqlite3'}",
            "REDIS_KEY_PREFIX": f"bench-{secrets.token_hex(3)}:",
            "LOG_LEVEL": "WARNING",
        }
        log = (Path(tmp) / "stack.log").open("wb")
        stack = subprocess.Popen(
            [sys.executable, "-m", "optionsite.devstack", "demo"], cwd=BASE_DIR, env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 90
            while not healthy(url):
                if time.monotonic() > deadline or stack.poll() is not None:
                    raise SystemExit("the demo stack did not become healthy within 90 s")
                time.sleep(1)
            print(f"machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d}; demo stack at {url}")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(f"{url}/chain/BTC/")
                page.wait_for_function("document.querySelector('#chain tbody tr') !== null", timeout=30_000)
                time.sleep(3)
                report("chain view (one expiry)", page.evaluate(MEASURE, 10))
                page.click("button[data-mode=flat]")
                time.sleep(2)
                rows = page.evaluate("document.querySelectorAll('#flat tbody tr').length")
                report(f"flat view ({rows} contracts)", page.evaluate(MEASURE, 10))
                browser.close()
        finally:
            stack.send_signal(signal.SIGINT)
            stack.wait(timeout=30)


if __name__ == "__main__":
    main()
