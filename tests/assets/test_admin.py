"""Staff manage assets in the admin, each change as their permissions allow; nobody else can."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from assets.models import Asset

# Transactional, so that on_commit hooks run; serialized rollback restores the seeded assets.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CHANGELIST = reverse("admin:assets_asset_changelist")


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("staff", "staff@example.com", "pw"))
    return client


def staff_holding(*permissions: str) -> User:
    """A staff user who holds only the named asset permissions (``add``, ``change``, ``delete``, ``view``)."""
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    codenames = [f"{permission}_asset" for permission in permissions]
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="assets", codename__in=codenames))
    return user


def changelist_form(**changes: object) -> dict[str, object]:
    """The changelist's list_editable form as the browser would post it."""
    assets = list(Asset.objects.order_by("display_order", "symbol"))
    data: dict[str, object] = {
        "form-TOTAL_FORMS": len(assets),
        "form-INITIAL_FORMS": len(assets),
        "_save": "Save",
    }
    for index, asset in enumerate(assets):
        data[f"form-{index}-id"] = asset.pk
        data[f"form-{index}-display_order"] = asset.display_order
        if changes.get(asset.symbol, asset.enabled):
            data[f"form-{index}-enabled"] = "on"
    return data


def test_it_lets_staff_add_an_asset_typed_in_lower_case(staff_client: Client, assets_events) -> None:
    response = staff_client.post(
        reverse("admin:assets_asset_add"),
        {"symbol": "xrp", "enabled": "on", "display_name": "XRP", "display_order": 40},
    )
    assert response.status_code == 302
    assert Asset.objects.get(symbol="XRP").enabled
    assert [event["symbols"] for event in assets_events.events()] == [["XRP"]]


def test_it_shows_a_bad_symbol_in_the_form(staff_client: Client) -> None:
    response = staff_client.post(reverse("admin:assets_asset_add"), {"symbol": "BTC-USDT", "display_order": 40})
    assert response.status_code == 200
    assert "An asset symbol is 2 to 10 letters or digits" in response.content.decode()
    assert not Asset.objects.filter(symbol="BTC-USDT").exists()


def test_it_shows_a_duplicate_symbol_in_the_form(staff_client: Client) -> None:
    response = staff_client.post(reverse("admin:assets_asset_add"), {"symbol": "eth", "display_order": 40})
    assert response.status_code == 200
    assert "An asset with this symbol already exists." in response.content.decode()


def test_it_lets_staff_toggle_enabled_in_the_list(staff_client: Client, assets_events) -> None:
    response = staff_client.post(CHANGELIST, changelist_form(ETH=False))
    assert response.status_code == 302
    assert list(Asset.objects.enabled().values_list("symbol", flat=True)) == ["BTC", "SOL"]
    assert [(event["action"], event["symbols"]) for event in assets_events.events()] == [("updated", ["ETH"])]


def test_it_lets_staff_disable_and_enable_in_bulk(staff_client: Client, assets_events) -> None:
    ids = list(Asset.objects.filter(symbol__in=["BTC", "SOL"]).values_list("pk", flat=True))
    staff_client.post(CHANGELIST, {"action": "disable_assets", "_selected_action": ids})
    assert list(Asset.objects.enabled().values_list("symbol", flat=True)) == ["ETH"]
    staff_client.post(CHANGELIST, {"action": "enable_assets", "_selected_action": ids})
    assert Asset.objects.enabled().count() == 3
    events = assets_events.events()
    assert [(event["action"], event["symbols"]) for event in events] == [
        ("updated", ["BTC", "SOL"]),
        ("updated", ["BTC", "SOL"]),
    ]


def test_it_finds_assets_by_search(staff_client: Client) -> None:
    response = staff_client.get(CHANGELIST, {"q": "ethereum"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_it_sends_anonymous_users_to_the_login_page(client: Client) -> None:
    for url in (CHANGELIST, reverse("admin:assets_asset_add")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    ids = list(Asset.objects.values_list("pk", flat=True))
    client.post(CHANGELIST, {"action": "disable_assets", "_selected_action": ids})
    assert Asset.objects.enabled().count() == 3


def test_it_refuses_a_logged_in_user_who_is_not_staff(client: Client) -> None:
    client.force_login(User.objects.create_user("trader", password="pw"))
    assert client.get(CHANGELIST).status_code == 302


def test_it_shows_a_display_order_past_the_fields_limit_in_the_form(staff_client: Client) -> None:
    for order in (32768, 10_000_000_000):
        response = staff_client.post(reverse("admin:assets_asset_add"), {"symbol": "DOGE", "display_order": order})
        assert response.status_code == 200
        assert "Ensure this value is less than or equal to 32767." in response.content.decode()
    assert not Asset.objects.filter(symbol="DOGE").exists()


@pytest.mark.parametrize("held", [(), ("view",), ("add",), ("change",), ("delete",)])
def test_it_lets_staff_do_only_what_their_permissions_allow(client: Client, held: tuple[str, ...]) -> None:
    """The same rule as the API's (tests/assets/test_api.py): add to add, change to edit or enable/disable,
    delete to delete."""
    client.force_login(staff_holding(*held))
    btc = Asset.objects.get(symbol="BTC")
    add = client.post(reverse("admin:assets_asset_add"), {"symbol": "xrp", "display_order": 40})
    assert add.status_code == (302 if "add" in held else 403)
    client.post(CHANGELIST, {"action": "disable_assets", "_selected_action": [btc.pk]})
    assert Asset.objects.get(symbol="BTC").enabled is ("change" not in held)
    delete = client.post(reverse("admin:assets_asset_delete", args=[btc.pk]), {"post": "yes"})
    assert delete.status_code == (302 if "delete" in held else 403)
    assert Asset.objects.filter(symbol="BTC").exists() is ("delete" not in held)


@pytest.mark.parametrize("selected", ["abc", "1\x00", "", "1e3"])
def test_it_answers_400_to_selected_assets_that_are_not_ids(staff_client: Client, selected: str) -> None:
    """Seen on PostgreSQL before: a forged ``_selected_action`` raised ValueError in the lookup, a 500."""
    response = staff_client.post(CHANGELIST, {"action": "disable_assets", "_selected_action": [selected]})
    assert response.status_code == 400
    assert Asset.objects.filter(enabled=True).count() == 3
