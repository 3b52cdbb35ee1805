"""Pure pieces of the feed: request chunking and backoff."""

import json

from ingest.connections import backoff_delay, subscription_requests


def test_it_chunks_subscriptions_within_bybits_limits() -> None:
    topics = [f"tickers.BTC-26DEC25-{100000 + i}-C-USDT" for i in range(1777)]
    chunks = list(subscription_requests(topics, per_request=500, max_chars=21_000))
    assert [len(chunk) for chunk in chunks] == [500, 500, 500, 277]
    assert [topic for chunk in chunks for topic in chunk] == topics
    assert all(len(json.dumps(chunk)) <= 21_000 for chunk in chunks)


def test_it_splits_on_characters_before_the_topic_count() -> None:
    topics = ["tickers." + "X" * 1000 for _ in range(50)]
    chunks = list(subscription_requests(topics, per_request=500, max_chars=21_000))
    assert all(len(json.dumps(chunk)) <= 21_000 for chunk in chunks)
    assert sum(map(len, chunks)) == 50


def test_it_backs_off_exponentially_with_jitter_up_to_a_ceiling() -> None:
    delays = [backoff_delay(attempt, initial=0.5, maximum=30) for attempt in range(12)]
    assert 0.25 <= delays[0] <= 0.5
    assert 2 <= delays[3] <= 4
    assert all(15 <= delay <= 30 for delay in delays[7:])
    assert len({backoff_delay(5, initial=0.5, maximum=30) for _ in range(20)}) > 1
