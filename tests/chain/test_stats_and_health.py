"""``/api/stats/`` and ``/api/health/``: what operators and the Docker healthchecks read."""

from __future__ import annotations

import logging
import re

import pytest
import redis
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from assets.services import assets_set_enabled
from ingest.keys import feed_status_key
from ingest.throttled_log import RateLimitedLog
from optionsite.devstack import free_port
from tests.chain.market import write_status

STALE_DATA = re.compile(r"^feed (\w+): newest data (\d+\.\d) s old \(limit (\d+(?:\.\d+)?) s\)$")


def stale_data(problems: list[str]) -> list[tuple[str, float, str]]:
    """``(asset, age, limit)`` of each "newest data ... old" problem. The age is the data's when the request read
    it, a little more than when the test wrote it (by 0.1 s on a busy machine: 42.1 against 42.0 in a CI run)."""
    matches = [STALE_DATA.match(problem) for problem in problems]
    assert all(matches), problems
    return [(match[1], float(match[2]), match[3]) for match in matches if match]


pytestmark = pytest.mark.django_db


@pytest.fixture
def all_feeds_live(redis_client: redis.Redis) -> None:
    for asset in ("BTC", "ETH", "SOL"):
        write_status(redis_client, asset=asset)


@pytest.fixture
def redis_down(settings: SettingsWrapper) -> None:
    """The app's Redis client points at a port nobody listens on (the cache keeps working)."""
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"


def test_it_reports_contract_counts_feed_figures_and_redis_memory(
    client: Client, fill, redis_client: redis.Redis
) -> None:
    fill("BTC")
    fill("SOL", limit_expiries=2)
    write_status(
        redis_client, asset="SOL", state="stale", last_message_age=40, data_age=40, reconnects=7, rejected_frames=3
    )
    body = client.get("/api/stats/").json()

    assets = {entry["asset"]: entry for entry in body["assets"]}
    assert list(assets) == ["BTC", "ETH", "SOL"]
    assert assets["BTC"]["contracts"] == 778
    assert assets["BTC"]["enabled"] is True
    assert assets["BTC"]["feed"] == {
        "state": "live",
        "fresh": True,
        "data_age": pytest.approx(0.3, abs=1),
        "last_message_age": pytest.approx(0.2, abs=1),
        "messages_per_second": 120.5,
        "messages_total": 12345,
        "reconnects": 2,
        "rejected_frames": 1,
        "connections": 1,
        "subscribed": 100,
        "lag_p50_ms": 182.0,
        "lag_p99_ms": 431.0,
        "uptime_seconds": pytest.approx(60, abs=5),
    }
    assert assets["SOL"]["feed"]["state"] == "stale"
    assert assets["SOL"]["feed"]["fresh"] is False
    assert (assets["SOL"]["feed"]["reconnects"], assets["SOL"]["feed"]["rejected_frames"]) == (7, 3)
    assert assets["ETH"]["contracts"] == 0
    assert assets["ETH"]["feed"]["state"] is None
    assert (assets["ETH"]["feed"]["lag_p50_ms"], assets["ETH"]["feed"]["lag_p99_ms"]) == (None, None)
    assert body["redis"]["used_memory"] > 0
    assert body["web"]["threads"] >= 1
    assert body["web"]["queue_limit"] >= 1
    assert body["web"]["waiting"] >= 0
    assert body["web"]["shed_full"] >= 0
    assert body["web"]["shed_waited"] >= 0
    assert body["redis"]["used_memory_human"]
    assert body["redis"]["uptime_seconds"] >= 0
    assert body["uptime_seconds"] > 0


def test_it_reports_no_lag_before_the_feeds_first_write(client: Client, redis_client: redis.Redis) -> None:
    write_status(redis_client, asset="BTC", state="connecting", last_message_ts=0, lag_p50_ms=None, lag_p99_ms=None)
    assets = {entry["asset"]: entry for entry in client.get("/api/stats/").json()["assets"]}
    assert assets["BTC"]["feed"]["state"] == "connecting"
    assert (assets["BTC"]["feed"]["lag_p50_ms"], assets["BTC"]["feed"]["lag_p99_ms"]) == (None, None)


def test_it_reports_a_disabled_asset_as_disabled(client: Client, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assets_set_enabled(symbols=["ETH"], enabled=False)
    assets = {entry["asset"]: entry for entry in client.get("/api/stats/").json()["assets"]}
    assert assets["ETH"]["enabled"] is False


def test_it_is_healthy_when_every_enabled_feed_is_fresh(client: Client, all_feeds_live: None) -> None:
    response = client.get("/api/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["healthy"] is True
    assert body["problems"] == []
    assert set(body["feeds"]) == {"BTC", "ETH", "SOL"}
    assert all(feed["fresh"] for feed in body["feeds"].values())


def test_it_turns_unhealthy_when_a_feed_stalls(client: Client, all_feeds_live: None, redis_client) -> None:
    write_status(redis_client, asset="ETH", last_message_age=42, data_age=42)
    response = client.get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["healthy"] is False
    ((asset, age, limit),) = stale_data(body["problems"])
    assert (asset, limit) == ("ETH", "2")
    assert 42.0 <= age < 43.0
    assert body["feeds"]["ETH"]["fresh"] is False
    assert body["feeds"]["BTC"]["fresh"] is True


def test_it_follows_the_configured_staleness_limit(
    client: Client, all_feeds_live: None, redis_client, settings: SettingsWrapper
) -> None:
    write_status(redis_client, asset="ETH", data_age=1.5)
    assert client.get("/api/health/").status_code == 200
    settings.FEED_STALE_AFTER = 1.0
    ((asset, age, limit),) = stale_data(client.get("/api/health/").json()["problems"])
    assert (asset, limit) == ("ETH", "1")
    assert 1.5 <= age < 2.0


def test_quotes_five_seconds_old_are_not_fresh_although_tickers_keep_arriving(
    client: Client, all_feeds_live: None, redis_client
) -> None:
    """Seen before: 5-6 s old quotes flagged fresh, because tickers kept arriving within FEED_STALE_AFTER (15 s)."""
    write_status(redis_client, asset="ETH", last_message_age=0.1, data_age=5)
    response = client.get("/api/health/")
    assert response.status_code == 503
    ((asset, age, limit),) = stale_data(response.json()["problems"])
    assert (asset, limit) == ("ETH", "2")
    assert 5.0 <= age < 5.5
    feed = client.get("/api/chain/ETH/").json()["feed"]
    assert feed["fresh"] is False
    assert feed["data_age"] == pytest.approx(5, abs=0.5)
    assert feed["last_message_age"] < 1


def test_it_turns_unhealthy_when_a_feeds_writes_lag_past_the_limit(
    client: Client, all_feeds_live: None, redis_client
) -> None:
    # As the feed writes it: its tickers keep coming, but it marks itself stale by its lag.
    write_status(redis_client, asset="ETH", state="stale", lag_p50_ms=1_800.0, lag_p99_ms=2_400.0)
    response = client.get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["problems"] == ["feed ETH: lag p99 2.4 s (limit 2 s)"]
    assert body["feeds"]["ETH"]["fresh"] is False
    assert body["feeds"]["BTC"]["fresh"] is True
    stats = {entry["asset"]: entry for entry in client.get("/api/stats/").json()["assets"]}
    assert stats["ETH"]["feed"]["lag_p99_ms"] == 2_400.0
    assert stats["ETH"]["feed"]["fresh"] is False


def test_it_stays_healthy_while_the_lag_is_within_the_limit(client: Client, all_feeds_live: None, redis_client) -> None:
    write_status(redis_client, asset="ETH", lag_p50_ms=900.0, lag_p99_ms=1_900.0)
    response = client.get("/api/health/")
    assert response.status_code == 200
    assert response.json()["feeds"]["ETH"]["fresh"] is True


def test_it_holds_the_lag_to_its_own_staleness_limit_too(
    client: Client, all_feeds_live: None, redis_client, settings: SettingsWrapper
) -> None:
    """A feed running with another FEED_STALE_AFTER still says live; the web process judges by its own."""
    write_status(redis_client, asset="ETH", lag_p99_ms=1_800.0)
    assert client.get("/api/health/").status_code == 200
    settings.FEED_STALE_AFTER = 1.5
    response = client.get("/api/health/")
    assert response.status_code == 503
    assert response.json()["problems"] == ["feed ETH: lag p99 1.8 s (limit 1.5 s)"]
    assert client.get("/api/chain/ETH/").json()["feed"]["fresh"] is False


def test_it_names_every_unhealthy_feed_and_why(client: Client, all_feeds_live: None, redis_client) -> None:
    write_status(redis_client, asset="BTC", state="connecting", last_message_ts=0)
    # Its worker died while it said live: it wrote nothing since, and its data has aged.
    write_status(redis_client, asset="SOL", data_age=30, updated_ts=1)
    redis_client.delete(feed_status_key("ETH"))
    response = client.get("/api/health/")
    assert response.status_code == 503
    problems = response.json()["problems"]
    assert problems[0] == "feed BTC: state is connecting"
    assert problems[1] == "feed ETH: no status in Redis (the feed has not started)"
    assert problems[2].startswith("feed SOL: newest data 30.")


def test_it_ignores_the_feed_of_a_disabled_asset(
    client: Client, all_feeds_live: None, redis_client, django_capture_on_commit_callbacks
) -> None:
    write_status(redis_client, asset="SOL", state="stopped")
    assert client.get("/api/health/").status_code == 503
    with django_capture_on_commit_callbacks(execute=True):
        assets_set_enabled(symbols=["SOL"], enabled=False)
    response = client.get("/api/health/")
    assert response.status_code == 200
    assert "SOL" not in response.json()["feeds"]


def test_it_is_unhealthy_without_redis(client: Client, all_feeds_live: None, redis_down: None) -> None:
    response = client.get("/api/health/")
    assert response.status_code == 503
    assert response.json()["problems"] == ["redis: unavailable"]


@pytest.mark.parametrize(
    "path", ["/api/options/BTC/", "/api/chain/BTC/", "/api/expiries/BTC/", "/api/strikes/BTC/?expiry=26DEC25"]
)
def test_it_answers_503_not_500_when_redis_is_down(client: Client, redis_down: None, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 503
    assert response.json() == {"detail": "Redis is unavailable"}


def test_it_answers_stats_503_when_redis_is_down(client: Client, redis_down: None) -> None:
    assert client.get("/api/stats/").status_code == 503


def test_liveness_is_200_while_redis_and_every_feed_are_down(client: Client, redis_down: None) -> None:
    assert client.get("/api/health/").status_code == 503
    response = client.get("/api/health/live/")
    assert response.status_code == 200
    assert response.json() == {"alive": True}


def test_readiness_is_200_while_the_feeds_are_stale_and_503_without_redis(
    client: Client, all_feeds_live: None, redis_client, settings: SettingsWrapper
) -> None:
    """An exchange outage: every feed stale, the data still served (fresh: false), so the web is ready."""
    for asset in ("BTC", "ETH", "SOL"):
        write_status(redis_client, asset=asset, state="stale", last_message_age=60, data_age=60)
    assert client.get("/api/health/").status_code == 503
    response = client.get("/api/health/ready/")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "problems": []}

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/api/health/ready")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "problems": ["redis: unavailable"]}


def test_it_names_no_address_of_redis_in_a_503_and_logs_it_once(
    client: Client,
    redis_down: None,
    settings: SettingsWrapper,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chain import unavailable

    monkeypatch.setattr(unavailable, "outage_log", RateLimitedLog(logging.getLogger(unavailable.__name__)))
    address = settings.REDIS_URL.removeprefix("redis://").removesuffix("/0")
    for path in ("/api/options/BTC/", "/api/health/", "/api/health/ready/", "/chain/indexes.json"):
        response = client.get(path)
        assert response.status_code == 503
        assert address.split(":")[1] not in response.content.decode(), path
    logged = [record.getMessage() for record in caplog.records if record.name == "chain.unavailable"]
    assert len(logged) == 1, "one line while the outage lasts, not one per answer"
    assert "Redis is unavailable" in logged[0]
    assert address in logged[0]
