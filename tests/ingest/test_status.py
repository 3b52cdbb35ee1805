"""The feed status: its state rule, and its round trip through the Redis hash."""

import pytest

from ingest.status import FeedStatus, feed_state


@pytest.mark.parametrize(
    ("age", "lag_p99", "connections", "expected"),
    [
        (None, None, 0, "connecting"),
        (0.1, 250.0, 1, "live"),
        (0.1, None, 1, "live"),
        (2.5, 250.0, 1, "stale"),  # the newest data is older than the limit: tickers stopped
        (0.1, 2_001.0, 1, "stale"),  # tickers arrive, but the writes are far behind them
        (0.1, 250.0, 0, "connecting"),  # one of the connections is being rebuilt
    ],
)
def test_it_is_stale_when_its_data_ages_or_writes_fall_behind(age, lag_p99, connections, expected) -> None:
    state = feed_state(data_age=age, lag_p99_ms=lag_p99, connections=connections, wanted=1, stale_after=2)
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


NOW = 1_800_000_000_000


def live_status(**changes: object) -> FeedStatus:
    status = FeedStatus(asset="BTC", state="live", data_ts=NOW - 300, lag_p50_ms=120.0, lag_p99_ms=240.0)
    for name, value in changes.items():
        setattr(status, name, value)
    return status


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"data_ts": NOW - 2_500}, "newest data 2.5 s old (limit 2 s)"),
        # The feed last wrote "live" and then died: its data ages, whatever its state says.
        ({"data_ts": NOW - 60_000, "updated_ts": NOW - 60_000}, "newest data 60.0 s old (limit 2 s)"),
        ({"data_ts": 0}, "no ticker received yet"),
        ({"lag_p99_ms": 2_400.0}, "lag p99 2.4 s (limit 2 s)"),
        ({"state": "connecting"}, "state is connecting"),
        ({"state": "stopped"}, "state is stopped"),
        ({"state": "stale"}, "state is stale"),  # stale by the feed's own limit
    ],
)
def test_its_data_is_fresh_only_while_young_enough_and_says_why_not(changes, reason) -> None:
    status = live_status(**changes)
    assert status.stale_reason(stale_after=2, now_ms=NOW) == reason
    assert status.is_fresh(stale_after=2, now_ms=NOW) is (reason is None)


def test_a_quote_five_seconds_old_is_not_fresh_with_the_default_limit() -> None:
    """Seen before the fix: quotes 5-6 s old flagged fresh while tickers kept arriving (FEED_STALE_AFTER was 15)."""
    from django.conf import settings

    status = live_status(data_ts=NOW - 5_000, last_message_ts=NOW - 100)
    assert not status.is_fresh(stale_after=settings.FEED_STALE_AFTER, now_ms=NOW)
