"""What a feed is told: its URLs, intervals and Bybit's limits, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeedSettings:
    ws_url: str
    rest_url: str
    flush_interval: float = 0.25
    stale_after: float = 2.0
    # A connection that delivers nothing for this long is rebuilt: Bybit pushes every
    # subscribed ticker every 100 ms, so silence means a stalled socket, not a calm market.
    silence_timeout: float = 10.0
    connect_timeout: float = 10.0
    topics_per_connection: int = 2000  # Bybit's limit for option sockets (reference §1.4)
    topics_per_request: int = 500  # keeps a request's args under 21,000 characters
    max_args_chars: int = 21_000
    # Reconnect delays (connections.backoff_delay) double from backoff_initial up to backoff_max: a 5 s cap finds
    # Bybit back within 5 s of any outage and keeps within its 500 connections per 5 minutes (docs/feed.md).
    backoff_initial: float = 0.5
    backoff_max: float = 5.0
    # A connection that delivered tickers this long restarts the backoff when it ends.
    backoff_reset_after: float = 10.0
    refresh_interval: float = 300.0
    refresh_retry: float = 15.0
    ping_interval: int = 20
    ping_timeout: int = 10
    # The lag percentiles in the feed status cover this many seconds of writes.
    lag_window: float = 10.0
    # Also keep one Redis hash per contract, field by field (docs/redis.md).
    contract_hashes: bool = False
    # Compute and publish the asset's analytics (analytics.publisher).
    analytics: bool = True

    @classmethod
    def from_django(cls) -> FeedSettings:
        from django.conf import settings

        return cls(
            ws_url=settings.BYBIT_WS_URL,
            rest_url=settings.BYBIT_REST_URL,
            flush_interval=settings.FEED_FLUSH_INTERVAL,
            stale_after=settings.FEED_STALE_AFTER,
            silence_timeout=settings.FEED_SILENCE_TIMEOUT,
            refresh_interval=settings.FEED_REFRESH_INTERVAL,
            contract_hashes=settings.FEED_CONTRACT_HASHES,
            analytics=settings.FEED_ANALYTICS,
        )
