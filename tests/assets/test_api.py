"""``/api/assets/``: anyone reads; only staff change, by session (with CSRF) or token, as the admin does."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from assets.models import Asset

# Transactional, so that on_commit hooks run; serialized rollback restores the seeded assets.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

NEW_ASSET = {"symbol": "xrp", "display_name": "XRP", "display_order": 40, "enabled": False}


@pytest.fixture(autouse=True)
def _fresh_asset_flags() -> None:
    from chain.queries import forget_asset_states

    forget_asset_states()


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def staff_client(staff: User) -> Client:
    """A browser session: CSRF is enforced, as it is for real browsers."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    return client


def csrf_token(client: Client) -> str:
    client.get("/api/assets/", HTTP_ACCEPT="text/html")
    return client.cookies["csrftoken"].value


def test_it_lets_anyone_list_and_read_assets(client: Client) -> None:
    listed = client.get("/api/assets/").json()
    assert [asset["symbol"] for asset in listed] == ["BTC", "ETH", "SOL"]
    assert listed[0] == {
        "symbol": "BTC",
        "enabled": True,
        "display_name": "Bitcoin",
        "display_order": 10,
        "label": "Bitcoin",
        "created_at": listed[0]["created_at"],
        "updated_at": listed[0]["updated_at"],
    }
    for path in ("/api/assets/eth/", "/api/assets/ETH", "/api/assets/Eth/"):
        assert client.get(path).json()["symbol"] == "ETH"
    assert client.get("/api/assets/XRP/").status_code == 404
    assert client.get("/api/assets/%00/").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/assets/", NEW_ASSET),
        ("patch", "/api/assets/BTC/", {"enabled": False}),
        ("put", "/api/assets/BTC/", {"enabled": False, "display_name": "B", "display_order": 1}),
        ("delete", "/api/assets/BTC/", None),
        ("post", "/api/assets/BTC/toggle/", None),
    ],
)
def test_it_refuses_changes_from_anonymous_and_non_staff_users(
    client: Client, method: str, path: str, body: dict[str, object] | None, assets_events
) -> None:
    anonymous = getattr(client, method)(path, body, content_type="application/json")
    assert anonymous.status_code == 403
    client.force_login(User.objects.create_user("trader", password="pw"))
    signed_in = getattr(client, method)(path, body, content_type="application/json")
    assert signed_in.status_code == 403
    assert signed_in.json() == {"detail": "You do not have permission to perform this action."}
    assert list(Asset.objects.values_list("symbol", "enabled")) == [("BTC", True), ("ETH", True), ("SOL", True)]
    assert assets_events.events(settle=0.1) == []


def test_it_refuses_a_staff_session_without_the_csrf_token(staff_client: Client) -> None:
    response = staff_client.post("/api/assets/", NEW_ASSET, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Asset.objects.filter(symbol="XRP").exists()


def test_it_lets_staff_create_an_asset_and_announces_it(staff_client: Client, assets_events) -> None:
    response = staff_client.post(
        "/api/assets/", NEW_ASSET, content_type="application/json", HTTP_X_CSRFTOKEN=csrf_token(staff_client)
    )
    assert response.status_code == 201
    assert response.json()["symbol"] == "XRP"
    assert response.json()["enabled"] is False
    assert Asset.objects.get(symbol="XRP").display_order == 40
    assert [(event["action"], event["symbols"]) for event in assets_events.events()] == [("created", ["XRP"])]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"symbol": "eth"}, "symbol", "An asset with this symbol already exists."),
        ({"symbol": "BTC-USDT"}, "symbol", "An asset symbol is 2 to 10 letters or digits"),
        ({"symbol": "ABCDEFGHIJK"}, "symbol", "Ensure this field has no more than 10 characters."),
        ({"symbol": "B$"}, "symbol", "An asset symbol is 2 to 10 letters or digits"),
        ({"symbol": ""}, "symbol", "This field may not be blank."),
        ({"symbol": "DOGE", "display_order": -1}, "display_order", "greater than or equal to 0"),
        ({"symbol": "DOGE", "enabled": "maybe"}, "enabled", "Must be a valid boolean."),
    ],
)
def test_it_names_the_field_and_the_reason_of_a_bad_asset(
    staff: User, client: Client, body: dict[str, object], field: str, reason: str
) -> None:
    token = Token.objects.create(user=staff)
    response = client.post("/api/assets/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 400
    assert reason in " ".join(response.json()[field])


def test_it_lets_a_script_with_a_staff_token_update_toggle_and_delete(
    staff: User, client: Client, assets_events
) -> None:
    token = client.post("/api/token/", {"username": "staff", "password": "pw"}).json()["token"]
    auth = {"Authorization": f"Token {token}"}

    updated = client.patch("/api/assets/sol/", {"display_name": "Sol"}, content_type="application/json", headers=auth)
    assert updated.status_code == 200
    assert updated.json()["display_name"] == "Sol"
    toggled = client.post("/api/assets/SOL/toggle/", headers=auth)
    assert toggled.json()["enabled"] is False
    assert client.get("/api/options/SOL/").status_code == 409
    assert client.post("/api/assets/SOL/toggle", headers=auth).json()["enabled"] is True
    assert client.delete("/api/assets/SOL/", headers=auth).status_code == 204
    assert client.get("/api/options/SOL/").status_code == 404

    events = [(event["action"], event["symbols"]) for event in assets_events.events()]
    assert events == [("updated", ["SOL"])] * 3 + [("deleted", ["SOL"])]


def test_it_does_not_announce_an_update_that_changes_nothing(staff: User, client: Client, assets_events) -> None:
    token = Token.objects.create(user=staff)
    response = client.patch(
        "/api/assets/BTC/", {"enabled": True}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )
    assert response.status_code == 200
    assert assets_events.events(settle=0.1) == []


def test_it_keeps_a_symbol_once_created(staff: User, client: Client) -> None:
    token = Token.objects.create(user=staff)
    response = client.put(
        "/api/assets/BTC/",
        {"symbol": "XBT", "enabled": True, "display_name": "Bitcoin", "display_order": 10},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert response.status_code == 400
    assert response.json() == {"symbol": ["An asset's symbol cannot change; create another asset."]}


def test_it_refuses_a_wrong_token(client: Client) -> None:
    response = client.post("/api/assets/BTC/toggle/", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 403
    assert Asset.objects.get(symbol="BTC").enabled


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/xml"])
def test_it_answers_415_to_a_body_it_cannot_parse_and_documents_it(staff: User, content_type: str) -> None:
    token = Token.objects.create(user=staff).key
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.post("/api/assets/", data=b"symbol=XRP", content_type=content_type)
    assert response.status_code == 415
    assert response.json()["detail"].startswith("Unsupported media type")
    assert not Asset.objects.filter(symbol="XRP").exists()

    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path, method in [
        ("/api/assets/", "post"),
        ("/api/assets/{symbol}/", "put"),
        ("/api/assets/{symbol}/", "patch"),
    ]:
        assert "415" in schema["paths"][path][method]["responses"]
    assert "415" not in schema["paths"]["/api/assets/"]["get"]["responses"]
