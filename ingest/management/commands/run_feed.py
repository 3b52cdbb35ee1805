"""``python manage.py run_feed BTC``: one asset's feed in the foreground, without Celery.

For debugging and for the benchmarks: it takes the asset's lease like a worker's feed task
(so it never runs beside another feed of the asset), prints one status line every
``--every`` seconds, and stops cleanly on Ctrl-C or SIGTERM (flush, close, release).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from assets.models import Asset
from ingest import supervision
from ingest.status import FeedStatus, read_feed_status
from optionsite.redis_client import redis_connection


class Command(BaseCommand):
    help = "Run one asset's feed in the foreground (no Celery); Ctrl-C stops it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("asset", help="the asset's symbol, e.g. BTC (an enabled asset)")
        parser.add_argument("--every", type=float, default=5.0, help="seconds between status lines (0: none)")

    def handle(self, *args: Any, **options: Any) -> None:
        asset = options["asset"].upper()
        if not Asset.objects.enabled().filter(symbol=asset).exists():
            raise CommandError(f"{asset} is not an enabled asset (see the admin's Assets page)")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        client = redis_connection()
        if options["every"] > 0:
            threading.Thread(target=self._report, args=(client, asset, options["every"], stop), daemon=True).start()
        outcome = supervision.run_asset_feed(client=client, asset=asset, worker="run_feed", stop_event=stop)
        self.stdout.write(f"{asset}: feed ended: {outcome}")

    def _report(self, client: Any, asset: str, every: float, stop: threading.Event) -> None:
        while not stop.wait(every):
            status = read_feed_status(client, asset)
            if status is not None:
                self.stdout.write(status_line(status))
                self.stdout.flush()


def status_line(status: FeedStatus) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    return (
        f"{status.asset} {status.state}: {status.subscribed}/{status.instruments} topics on "
        f"{status.connections}/{status.connections_wanted} connections, {status.messages_per_second:,.0f} msg/s, "
        f"lag p50 {ms(status.lag_p50_ms)} ms p99 {ms(status.lag_p99_ms)} ms, {status.reconnects} reconnects, "
        f"{status.rejected_frames} rejected"
    )
