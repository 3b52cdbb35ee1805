"""Every change to the asset set announces itself once on Redis, after it is committed."""

import pytest
import redis
from django.db import transaction

from assets.events import assets_version_key, build_assets_changed, parse_assets_changed
from assets.models import Asset
from assets.services import assets_set_enabled

# Transactional, so that on_commit hooks run; serialized rollback restores the seeded assets.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_it_announces_a_created_asset_once(assets_events) -> None:
    Asset.objects.create(symbol="xrp")
    [event] = assets_events.events()
    assert event["type"] == "assets.changed"
    assert event["action"] == "created"
    assert event["symbols"] == ["XRP"]


def test_it_announces_disabling_and_enabling_once_each(assets_events) -> None:
    asset = Asset.objects.get(symbol="SOL")
    asset.enabled = False
    asset.save()
    asset.enabled = True
    asset.save()
    events = assets_events.events()
    assert [(event["action"], event["symbols"]) for event in events] == [("updated", ["SOL"]), ("updated", ["SOL"])]


def test_it_announces_a_bulk_update_once_for_all_its_assets(assets_events) -> None:
    assert assets_set_enabled(symbols=["btc", "eth"], enabled=False) == 2
    [event] = assets_events.events()
    assert event["action"] == "updated"
    assert event["symbols"] == ["BTC", "ETH"]


def test_it_announces_nothing_when_a_bulk_update_changes_nothing(assets_events) -> None:
    assert assets_set_enabled(symbols=["BTC"], enabled=True) == 0
    assert assets_events.events() == []


def test_it_announces_a_deleted_asset(assets_events) -> None:
    Asset.objects.get(symbol="ETH").delete()
    [event] = assets_events.events()
    assert (event["action"], event["symbols"]) == ("deleted", ["ETH"])


def test_it_announces_nothing_for_a_rolled_back_change(assets_events) -> None:
    def create_then_fail() -> None:
        with transaction.atomic():
            Asset.objects.create(symbol="DOGE")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        create_then_fail()
    assert assets_events.events() == []
    assert not Asset.objects.filter(symbol="DOGE").exists()


def test_it_announces_after_commit_not_before(assets_events) -> None:
    with transaction.atomic():
        Asset.objects.create(symbol="AVAX")
        assert assets_events.events(settle=0.1) == []
    assert [event["symbols"] for event in assets_events.events()] == [["AVAX"]]


def test_it_bumps_the_version_counter_with_each_event(assets_events, redis_client: redis.Redis) -> None:
    before = int(redis_client.get(assets_version_key()) or 0)
    Asset.objects.create(symbol="TON")
    Asset.objects.filter(symbol="TON").delete()
    events = assets_events.events()
    assert [event["version"] for event in events] == [before + 1, before + 2]
    assert int(redis_client.get(assets_version_key()) or 0) == before + 2


def test_it_keeps_the_change_when_redis_is_down(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    Asset.objects.create(symbol="ADA")
    assert Asset.objects.filter(symbol="ADA").exists()


def test_it_parses_only_well_formed_events() -> None:
    event = build_assets_changed(version=3, action="created", symbols=["BTC"])
    assert parse_assets_changed(__import__("orjson").dumps(event)) == event
    for raw in [b"{", b"[]", b'{"type": "other"}', b'{"type": "assets.changed", "action": "exploded", "symbols": []}']:
        with pytest.raises(ValueError, match=r"assets\.changed"):
            parse_assets_changed(raw)
