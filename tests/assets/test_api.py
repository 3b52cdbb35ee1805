"""``/api/assets/``: anyone reads; only staff change, by session (with CSRF) or token, holding the admin's
permission for the change."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import Permission, User
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


def staff_holding(*permissions: str, username: str = "clerk") -> User:
    """A staff user who holds only the named asset permissions (``add``, ``change``, ``delete``, ``view``)."""
    user = User.objects.create_user(username, password="pw", is_staff=True)
    codenames = [f"{permission}_asset" for permission in permissions]
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="assets", codename__in=codenames))
    return user


@pytest.fixture
def staff() -> User:
    """A staff user who may make every change: the admin's add, change and delete permissions."""
    return staff_holding("add", "change", "delete", username="staff")


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
    # Not staff, though holding every asset permission: the admin would not let this user in either.
    trader = User.objects.create_user("trader", password="pw")
    trader.user_permissions.set(Permission.objects.filter(content_type__app_label="assets"))
    client.force_login(trader)
    signed_in = getattr(client, method)(path, body, content_type="application/json")
    assert signed_in.status_code == 403
    assert signed_in.json() == {"detail": "You do not have permission to perform this action."}
    assert list(Asset.objects.values_list("symbol", "enabled")) == [("BTC", True), ("ETH", True), ("SOL", True)]
    assert assets_events.events(settle=0.1) == []


# Each change through the API, and the permission the admin asks for the same change: the toggle is the
# admin's enable/disable action, which needs "change".
CHANGES = [
    ("post", "/api/assets/", NEW_ASSET, 201, "add"),
    ("patch", "/api/assets/BTC/", {"display_order": 5}, 200, "change"),
    ("put", "/api/assets/BTC/", {"enabled": True, "display_name": "B", "display_order": 5}, 200, "change"),
    ("post", "/api/assets/BTC/toggle/", None, 200, "change"),
    ("delete", "/api/assets/ETH/", None, 204, "delete"),
]


def test_it_refuses_every_change_from_staff_without_permissions(client: Client, assets_events) -> None:
    token = Token.objects.create(user=staff_holding())
    for method, path, body, _, _ in CHANGES:
        response = getattr(client, method)(
            path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
        )
        assert (method, path, response.status_code) == (method, path, 403)
        assert response.json() == {"detail": "You do not have permission to perform this action."}
    assert list(Asset.objects.values_list("symbol", "display_order", "enabled")) == [
        ("BTC", 10, True),
        ("ETH", 20, True),
        ("SOL", 30, True),
    ]
    assert assets_events.events(settle=0.1) == []


@pytest.mark.parametrize("held", [("view",), ("add",), ("change",), ("delete",), ("add", "change", "delete")])
def test_it_lets_staff_make_only_the_changes_their_admin_permissions_allow(
    client: Client, held: tuple[str, ...]
) -> None:
    token = Token.objects.create(user=staff_holding(*held))
    for method, path, body, allowed, needs in CHANGES:
        response = getattr(client, method)(
            path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
        )
        assert (method, path, response.status_code) == (method, path, allowed if needs in held else 403)


def test_it_lets_staff_without_permissions_read_as_anyone_does(client: Client) -> None:
    client.force_login(staff_holding())
    assert client.get("/api/assets/").status_code == 200
    assert client.get("/api/assets/BTC/").json()["symbol"] == "BTC"


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
        ({"symbol": "DOGE", "display_order": 32768}, "display_order", "less than or equal to 32767"),
        ({"symbol": "DOGE", "display_order": 10_000_000_000}, "display_order", "less than or equal to 32767"),
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
    assert list(Asset.objects.values_list("symbol", flat=True)) == ["BTC", "ETH", "SOL"]


@pytest.mark.parametrize("symbol", [123, 12.5, True, ["BTC"], {"symbol": "BTC"}])
def test_it_takes_only_a_json_string_as_a_symbol(staff: User, client: Client, symbol: object) -> None:
    token = Token.objects.create(user=staff)
    response = client.post(
        "/api/assets/", {"symbol": symbol}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )
    assert response.status_code == 400
    assert response.json() == {"symbol": ['An asset symbol is a JSON string, such as "BTC".']}
    assert list(Asset.objects.values_list("symbol", flat=True)) == ["BTC", "ETH", "SOL"]


def test_it_takes_display_orders_up_to_the_fields_limit_on_every_database(staff: User, client: Client) -> None:
    token = Token.objects.create(user=staff)
    auth = {"Authorization": f"Token {token}"}
    created = client.post(
        "/api/assets/", {"symbol": "DOGE", "display_order": 32767}, content_type="application/json", headers=auth
    )
    assert created.status_code == 201
    assert Asset.objects.get(symbol="DOGE").display_order == 32767
    for order in (32768, 10_000_000_000):
        refused = client.patch(
            "/api/assets/BTC/", {"display_order": order}, content_type="application/json", headers=auth
        )
        assert refused.status_code == 400
        assert refused.json() == {"display_order": ["Ensure this value is less than or equal to 32767."]}
    assert Asset.objects.get(symbol="BTC").display_order == 10


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


@pytest.mark.parametrize("symbol", ["XBT", 123])
def test_it_keeps_a_symbol_once_created(staff: User, client: Client, symbol: object) -> None:
    token = Token.objects.create(user=staff)
    response = client.put(
        "/api/assets/BTC/",
        {"symbol": symbol, "enabled": True, "display_name": "Bitcoin", "display_order": 10},
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
