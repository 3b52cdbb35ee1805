"""The feed status: its state rule, and its round trip through the Redis hash."""

import pytest

from ingest.status import FeedStatus, feed_state


@pytest.mark.parametrize(
    ("age", "lag_p99", "connections", "expected"),
    [
        (None, None, 0, "connecting"),
        (0.1, 250.0, 1, "live"),
        (0.1, None, 1, "live"),
        (16.0, 250.0, 1, "stale"),  # tickers stopped
        (0.1, 15_001.0, 1, "stale"),  # tickers arrive, but the writes are far behind them
        (0.1, 250.0, 0, "connecting"),  # one of the connections is being rebuilt
    ],
)
def test_it_is_stale_when_tickers_stop_or_writes_fall_behind(age, lag_p99, connections, expected) -> None:
    state = feed_state(last_message_age=age, lag_p99_ms=lag_p99, connections=connections, wanted=1, stale_after=15)
    assert state == expected


def test_it_keeps_its_lag_through_redis_and_none_as_none() -> None:
    status = FeedStatus(asset="BTC", state="live", lag_p50_ms=120.0, lag_p99_ms=240.5, messages_total=7)
    raw = {key.encode(): value.encode() for key, value in status.to_redis().items()}
    assert FeedStatus.from_redis("BTC", raw) == status

    unknown = FeedStatus(asset="BTC")
    assert unknown.to_redis()["lag_p99_ms"] == ""
    raw = {key.encode(): value.encode() for key, value in unknown.to_redis().items()}
    restored = FeedStatus.from_redis("BTC", raw)
    assert restored is not None
    assert restored.lag_p50_ms is None
    assert restored.lag_p99_ms is None
