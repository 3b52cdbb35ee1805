"""The live chain's WebSocket through the real ASGI application and the real channels-redis layer.

Redis is filled by the ingest's own writer and events are sent the way the ingest sends them
(``ingest.events`` builders, ``group_send`` to ``chain.<ASSET>``).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from pytest_django.fixtures import Settings as SettingsWrapper

from chain.flow_control import MAX_UNACKED_MESSAGES
from chain.messages import MAX_ROWS_PER_FRAME
from ingest.events import ChangedRow, build_chain_instruments, build_chain_status, build_chain_update
from ingest.keys import chain_group
from ingest.normalize import ContractRow, apply_ticker, static_row
from ingest.store import sync_instruments, write_rows
from tests.chain.market import real_contracts

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def communicator(path: str, *, origin: tuple[bytes, bytes] = ORIGIN) -> WebsocketCommunicator:
    from optionsite.asgi import application

    return WebsocketCommunicator(application, path, headers=[origin])


async def receive(client: WebsocketCommunicator, timeout: float = 3) -> dict[str, Any]:
    return orjson.loads(await client.receive_from(timeout=timeout))


async def connected(path: str) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """A connected client and the snapshot it got first."""
    client = communicator(path)
    accepted, _ = await client.connect(timeout=5)
    assert accepted
    snapshot = await receive(client)
    assert snapshot["type"] == "snapshot"
    return client, snapshot


def repriced(rows: list[ContractRow], *, mark: float, ts: int | None = None) -> list[ContractRow]:
    """The rows after a ticker that moves their mark, as the feed would apply it."""
    now = ts or int(time.time() * 1000)
    return [apply_ticker(row, {"markPrice": str(mark)}, ts=now, received_ts=now + 3) for row in rows]


async def publish(redis_client: redis.Redis, event: Any, *, rows: list[ContractRow] | None = None) -> None:
    """What a feed's flush does: write the rows, then send the event to the asset's group."""
    if rows:
        pipe = redis_client.pipeline(transaction=False)
        write_rows(pipe, asset=event["asset"], rows=rows)
        pipe.execute()
    await get_channel_layer().group_send(chain_group(event["asset"]), event)


def expiries_of(rows: list[ContractRow]) -> list[str]:
    """The rows' expiries in delivery order."""
    deliveries = {row["expiry"]: row["delivery_ms"] for row in rows}
    return sorted(deliveries, key=deliveries.__getitem__)


async def test_it_sends_a_snapshot_of_the_whole_chain_on_connect(fill: Callable[..., list[ContractRow]]) -> None:
    rows = fill("BTC", limit_expiries=3)
    client, snapshot = await connected("/ws/chain/btc/")

    assert snapshot["seq"] == 1
    assert (snapshot["part"], snapshot["parts"]) == (1, 1)
    assert snapshot["asset"] == "BTC"
    assert snapshot["reason"] == "connect"
    assert snapshot["view"] == {"expiry": None, "settle": None}
    assert {row["symbol"] for row in snapshot["rows"]} == {row["symbol"] for row in rows}
    sent = {row["symbol"]: row for row in rows}
    assert all(row == sent[row["symbol"]] for row in snapshot["rows"])
    assert [expiry["expiry"] for expiry in snapshot["expiries"]] == expiries_of(rows)
    assert all(expiry["settles"] for expiry in snapshot["expiries"])
    assert snapshot["feed"]["state"] == "live"
    assert snapshot["feed"]["index_price"] == 110_000.0
    assert (snapshot["feed"]["lag_p50_ms"], snapshot["feed"]["lag_p99_ms"]) == (182.0, 431.0)
    await client.disconnect()


async def test_it_narrows_the_snapshot_to_the_expiry_and_settle_in_the_url(
    fill: Callable[..., list[ContractRow]],
) -> None:
    rows = fill("BTC", limit_expiries=3)
    expiry = expiries_of(rows)[1]
    client, snapshot = await connected(f"/ws/chain/BTC/?expiry={expiry}&settle=usdt")

    assert snapshot["view"] == {"expiry": expiry, "settle": "USDT"}
    wanted = {row["symbol"] for row in rows if row["expiry"] == expiry and row["settle"] == "USDT"}
    assert wanted
    assert {row["symbol"] for row in snapshot["rows"]} == wanted
    assert len(snapshot["expiries"]) == 3, "every expiry is listed, whatever the view"
    await client.disconnect()


async def test_it_forwards_only_the_updated_rows_in_the_clients_view(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    rows = fill("BTC", limit_expiries=2)
    first, second = expiries_of(rows)
    client, _ = await connected(f"/ws/chain/BTC/?expiry={first}&settle=USDT")

    watched = [row for row in rows if row["expiry"] == first and row["settle"] == "USDT"][:3]
    elsewhere = [row for row in rows if row["expiry"] == second][:3]
    changed = repriced(watched + elsewhere, mark=1234.5)
    event = build_chain_update(asset="BTC", rows=changed)
    await publish(redis_client, event, rows=changed)

    update = await receive(client)
    assert update["type"] == "update"
    assert update["seq"] == 2
    assert update["ts"] == event["ts"]
    assert update["rows"] == changed[:3]

    # An update with nothing in the view sends nothing.
    await publish(redis_client, build_chain_update(asset="BTC", rows=repriced(elsewhere, mark=99.0)))
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def test_it_sends_a_fresh_snapshot_when_the_client_changes_its_view(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    rows = fill("BTC", limit_expiries=2)
    first, second = expiries_of(rows)
    client, _ = await connected(f"/ws/chain/BTC/?expiry={first}")
    moved = repriced([row for row in rows if row["expiry"] == second and row["settle"] == "USDT"], mark=77.0)
    pipe = redis_client.pipeline()
    write_rows(pipe, asset="BTC", rows=moved)
    pipe.execute()

    await client.send_to(text_data=orjson.dumps({"type": "view", "expiry": second, "settle": "USDT"}).decode())
    snapshot = await receive(client)
    assert snapshot["type"] == "snapshot"
    assert snapshot["reason"] == "view"
    assert snapshot["view"] == {"expiry": second, "settle": "USDT"}
    assert snapshot["rows"] == sorted(moved, key=lambda row: (row["strike"], row["type"]))

    # Later updates follow the new view.
    changed = repriced(moved[:2] + [row for row in rows if row["expiry"] == first][:2], mark=88.0)
    await publish(redis_client, build_chain_update(asset="BTC", rows=changed), rows=changed)
    update = await receive(client)
    assert [row["symbol"] for row in update["rows"]] == [row["symbol"] for row in moved[:2]]

    # Back to the whole chain.
    await client.send_to(text_data='{"type": "view", "expiry": null, "settle": null}')
    snapshot = await receive(client)
    assert len(snapshot["rows"]) == len(rows)
    await client.disconnect()


async def test_it_forwards_listings_deliveries_and_feed_status(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    contracts = real_contracts("ETH", limit_expiries=3)
    rows = fill("ETH", limit_expiries=2)
    first = expiries_of(rows)[0]
    client, snapshot = await connected("/ws/chain/ETH/?settle=USDT")
    assert len(snapshot["expiries"]) == 2

    # The nearest expiry is delivered and a new one listed, as a refresh of the instruments finds it.
    remaining = [contract for contract in contracts if contract.expiry_code != first]
    change = sync_instruments(redis_client, asset="ETH", contracts=remaining)
    event = build_chain_instruments(asset="ETH", listed=change.listed, delivered=change.delivered)
    await publish(redis_client, event)

    frame = await receive(client)
    assert frame["type"] == "instruments"
    assert set(frame["delivered"]) == {row["symbol"] for row in rows if row["expiry"] == first}
    assert frame["listed"] == [row for row in change.listed if row["settle"] == "USDT"]
    assert frame["listed"]
    assert all(row["bid_price"] is None for row in frame["listed"])
    assert first not in [expiry["expiry"] for expiry in frame["expiries"]]
    assert len(frame["expiries"]) == 2

    await publish(redis_client, build_chain_status(asset="ETH", state="stale"))
    status = await receive(client)
    assert status["type"] == "status"
    assert status["state"] == "stale"
    assert status["seq"] == frame["seq"] + 1
    await client.disconnect()


async def test_a_chain_longer_than_a_frame_goes_out_in_parts(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    rows = fill("BTC")
    assert len(rows) > MAX_ROWS_PER_FRAME
    client = communicator("/ws/chain/BTC/")
    assert (await client.connect(timeout=5))[0]
    first, second = await receive(client), await receive(client)
    assert [(frame["type"], frame["part"], frame["parts"]) for frame in (first, second)] == [
        ("snapshot", 1, 2),
        ("snapshot", 2, 2),
    ]
    assert len(first["rows"]) == MAX_ROWS_PER_FRAME
    assert {row["symbol"] for row in first["rows"] + second["rows"]} == {row["symbol"] for row in rows}
    assert second["expiries"] == first["expiries"]

    changed = repriced(rows, mark=42.0)
    event = build_chain_update(asset="BTC", rows=changed)
    await publish(redis_client, event, rows=changed)
    updates = [await receive(client), await receive(client)]
    assert [len(update["rows"]) for update in updates] == [MAX_ROWS_PER_FRAME, len(rows) - MAX_ROWS_PER_FRAME]
    assert {update["ts"] for update in updates} == {event["ts"]}
    assert [row["symbol"] for update in updates for row in update["rows"]] == [row["symbol"] for row in changed]
    await client.disconnect()


@pytest.mark.parametrize("asset", ["XYZ", "BTC-", "btc.usdt", "A" * 40])
async def test_it_closes_with_4404_for_an_asset_that_is_not_configured(asset: str) -> None:
    client = communicator(f"/ws/chain/{asset}/")
    accepted, _ = await client.connect(timeout=5)
    assert accepted, "accepted first, so that a browser sees the close code"
    closed = await client.receive_output(timeout=3)
    assert (closed["type"], closed["code"]) == ("websocket.close", 4404)
    await client.disconnect()


async def test_it_closes_with_4403_for_a_disabled_asset() -> None:
    from assets.models import Asset

    await database_sync_to_async(Asset.objects.filter(symbol="SOL").update)(enabled=False)
    client = communicator("/ws/chain/SOL/")
    accepted, _ = await client.connect(timeout=5)
    assert accepted
    closed = await client.receive_output(timeout=3)
    assert (closed["type"], closed["code"]) == ("websocket.close", 4403)
    await client.disconnect()


async def test_it_refuses_a_page_from_another_origin(fill: Callable[..., list[ContractRow]]) -> None:
    fill("BTC", limit_expiries=1)
    client = communicator("/ws/chain/BTC/", origin=(b"origin", b"http://evil.example"))
    accepted, _ = await client.connect(timeout=5)
    assert not accepted


def handshake(*, scheme: str, host: str, origin: str) -> WebsocketCommunicator:
    """A handshake as a browser sends it, with the ``Host`` it connects to and its page's ``Origin``."""
    from optionsite.asgi import application

    client = WebsocketCommunicator(
        application, "/ws/chain/BTC/", headers=[(b"host", host.encode()), (b"origin", origin.encode())]
    )
    client.scope["scheme"] = scheme  # not among the communicator's arguments; read when the handshake starts
    return client


async def opens(client: WebsocketCommunicator) -> bool:
    """Whether the handshake is accepted; the connection is closed either way, as a server ends a refused one."""
    accepted, _ = await client.connect(timeout=5)
    await client.disconnect()
    return accepted


@pytest.mark.parametrize(
    ("scheme", "host", "origin", "accepted"),
    [
        ("ws", "127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("wss", "localhost", "https://localhost", True),
        ("ws", "localhost:8000", "http://localhost:3000", False),  # another port of an allowed host
        ("ws", "localhost:8000", "https://localhost:8000", False),  # another scheme
        ("wss", "localhost", "http://localhost", False),  # a page without TLS, for a socket with it
        ("ws", "localhost:8000", "null", False),  # a sandboxed page or a file
        ("ws", "evil.example", "http://evil.example", False),  # a host not served: DNS rebinding
    ],
)
async def test_it_accepts_a_page_only_from_its_own_origin(
    fill: Callable[..., list[ContractRow]], scheme: str, host: str, origin: str, accepted: bool
) -> None:
    fill("BTC", limit_expiries=1)
    assert await opens(handshake(scheme=scheme, host=host, origin=origin)) is accepted


async def test_it_accepts_a_page_from_a_trusted_origin(
    fill: Callable[..., list[ContractRow]], settings: SettingsWrapper
) -> None:
    # As Django's CSRF check reads the setting: exact origins, and "*." for every subdomain.
    settings.CSRF_TRUSTED_ORIGINS = ["http://localhost:3000", "https://*.example.com"]
    fill("BTC", limit_expiries=1)
    for origin, accepted in [
        ("http://localhost:3000", True),
        ("https://chain.example.com", True),
        ("http://localhost:3001", False),
        ("http://chain.example.com", False),
    ]:
        assert await opens(handshake(scheme="ws", host="localhost:8000", origin=origin)) is accepted, origin


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "bad_message"),
        ("[1, 2]", "bad_message"),
        ('{"type": "subscribe"}', "bad_message"),
        ('{"expiry": "26DEC25"}', "bad_message"),
        ('{"type": "ack", "seq": "1"}', "bad_message"),
        ('{"type": "ack", "seq": 99}', "bad_message"),
        ('{"type": "view", "expiry": "31FEB27"}', "bad_view"),
        ('{"type": "view", "expiry": 26}', "bad_view"),
        ('{"type": "view", "settle": "BTC"}', "bad_view"),
        ('{"type": "view", "pad": "' + "x" * 5000 + '"}', "bad_message"),
    ],
)
async def test_it_answers_a_malformed_message_with_an_error_and_stays_open(
    fill: Callable[..., list[ContractRow]], message: str, code: str
) -> None:
    rows = fill("BTC", limit_expiries=2)
    client, _ = await connected("/ws/chain/BTC/")

    await client.send_to(text_data=message)
    error = await receive(client)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]

    await client.send_to(text_data=orjson.dumps({"type": "view", "expiry": rows[0]["expiry"]}).decode())
    snapshot = await receive(client)
    assert snapshot["type"] == "snapshot"
    assert snapshot["view"]["expiry"] == rows[0]["expiry"]
    await client.disconnect()


async def test_it_answers_a_binary_frame_and_a_bad_query_string_with_errors(
    fill: Callable[..., list[ContractRow]],
) -> None:
    fill("BTC", limit_expiries=1)
    client = communicator("/ws/chain/BTC/?expiry=tomorrow")
    accepted, _ = await client.connect(timeout=5)
    assert accepted
    error = await receive(client)
    assert (error["type"], error["code"]) == ("error", "bad_view")
    snapshot = await receive(client)
    assert snapshot["view"] == {"expiry": None, "settle": None}, "the whole chain instead"

    await client.send_to(bytes_data=b"\x00\x01")
    error = await receive(client)
    assert (error["type"], error["code"]) == ("error", "bad_message")
    await client.disconnect()


async def test_a_client_that_stops_reading_gets_a_snapshot_instead_of_a_backlog_and_never_holds_up_another(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    rows = fill("BTC", limit_expiries=1)
    watched = [row for row in rows if row["settle"] == "USDT"][:20]
    fast, _ = await connected("/ws/chain/BTC/")
    slow, _ = await connected("/ws/chain/BTC/")

    sends: list[float] = []
    for step in range(30):
        changed = repriced(watched, mark=100.0 + step)
        started = time.perf_counter()
        await publish(redis_client, build_chain_update(asset="BTC", rows=changed), rows=changed)
        sends.append(time.perf_counter() - started)
        update = await receive(fast)
        assert update["type"] == "update"
        assert update["rows"][0]["mark_price"] == 100.0 + step
        await fast.send_to(text_data=orjson.dumps({"type": "ack", "seq": update["seq"]}).decode())
    assert max(sends) < 2, "the ingest's group_send never waits for a consumer"

    # The slow client was sent no more than it may leave unacknowledged (its snapshot included).
    await asyncio.sleep(0.2)
    backlog = []
    while not slow.output_queue.empty():
        backlog.append(orjson.loads((await slow.receive_output())["text"]))
    assert len(backlog) == MAX_UNACKED_MESSAGES - 1
    assert [frame["type"] for frame in backlog] == ["update"] * len(backlog)

    # Once it catches up, it gets the chain as it is now, not the 23 updates it missed.
    await slow.send_to(text_data=orjson.dumps({"type": "ack", "seq": backlog[-1]["seq"]}).decode())
    snapshot = await receive(slow)
    assert snapshot["type"] == "snapshot"
    assert snapshot["reason"] == "resync"
    latest = {row["symbol"]: row["mark_price"] for row in snapshot["rows"]}
    assert {latest[row["symbol"]] for row in watched} == {129.0}

    # And then updates again.
    changed = repriced(watched, mark=500.0)
    await publish(redis_client, build_chain_update(asset="BTC", rows=changed), rows=changed)
    assert (await receive(slow))["rows"][0]["mark_price"] == 500.0
    await fast.disconnect()
    await slow.disconnect()


async def test_connections_whose_events_arrive_late_resync_together(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chain import live_chain

    reads = 0
    read_live_chain = live_chain.read_live_chain

    async def counted_read(*, asset: str) -> live_chain.LiveChain:
        nonlocal reads
        reads += 1
        return await read_live_chain(asset=asset)

    rows = fill("BTC", limit_expiries=2)
    watched = rows[:5]
    symbols = {row["symbol"] for row in watched}
    clients = [(await connected(f"/ws/chain/BTC/?expiry={rows[0]['expiry']}"))[0] for _ in range(3)]
    clients.append((await connected("/ws/chain/BTC/"))[0])
    for mark in (10.0, 11.0):
        changed = repriced(watched, mark=mark)
        await publish(redis_client, build_chain_update(asset="BTC", rows=changed), rows=changed)
        for client in clients:
            assert (await receive(client))["type"] == "update"

    # An event that waited 5 s in a queue (the process was busy): the channel layer may have dropped
    # others meanwhile, so every connection skips it and resyncs at the next one (sharing one read).
    late = build_chain_update(asset="BTC", rows=repriced(watched, mark=12.0))
    late["ts"] -= 5000
    await publish(redis_client, late)
    for client in clients:
        assert await client.receive_nothing(timeout=0.2)

    monkeypatch.setattr(live_chain, "read_live_chain", counted_read)
    changed = repriced(watched, mark=13.0)
    await publish(redis_client, build_chain_update(asset="BTC", rows=changed), rows=changed)
    in_first_expiry = sum(row["expiry"] == rows[0]["expiry"] for row in rows)
    for client, view_size in zip(clients, [in_first_expiry] * 3 + [len(rows)], strict=True):
        snapshot = await receive(client)
        assert (snapshot["type"], snapshot["reason"]) == ("snapshot", "resync")
        assert {row["mark_price"] for row in snapshot["rows"] if row["symbol"] in symbols} == {13.0}
        assert len(snapshot["rows"]) == view_size
    assert reads == 1  # one read for the four connections, shared by the event's id
    for client in clients:
        await client.disconnect()


async def test_connections_in_one_view_share_the_filtering_and_encoding_of_an_update(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chain import updates

    filtered: list[Any] = []
    changed_rows_in_view = updates.changed_rows_in_view

    def counted_filter(rows: list[ChangedRow], view: Any) -> list[bytes]:
        filtered.append(dict(view))
        return changed_rows_in_view(rows, view)

    rows = fill("BTC", limit_expiries=2)
    expiry = rows[0]["expiry"]
    same_view = [(await connected(f"/ws/chain/BTC/?expiry={expiry}"))[0] for _ in range(3)]
    whole_chain, _ = await connected("/ws/chain/BTC/")
    monkeypatch.setattr(updates, "changed_rows_in_view", counted_filter)

    elsewhere = next(row for row in rows if row["expiry"] != expiry)
    changed = repriced([*[row for row in rows if row["expiry"] == expiry][:3], elsewhere], mark=42.0)
    await publish(redis_client, build_chain_update(asset="BTC", rows=changed), rows=changed)

    in_view = sorted(row["symbol"] for row in changed if row["expiry"] == expiry)
    for client in same_view:
        update = await receive(client)
        assert (update["type"], update["seq"]) == ("update", 2)
        assert sorted(row["symbol"] for row in update["rows"]) == in_view
        assert {row["mark_price"] for row in update["rows"]} == {42.0}
    update = await receive(whole_chain)
    assert sorted(row["symbol"] for row in update["rows"]) == sorted(row["symbol"] for row in changed)
    # Once per view, not once per connection (the order is the channel layer's).
    assert sorted(filtered, key=str) == sorted(
        [{"expiry": expiry, "settle": None}, {"expiry": None, "settle": None}], key=str
    )
    for client in [*same_view, whole_chain]:
        await client.disconnect()


async def test_it_accepts_a_burst_of_150_connections(fill: Callable[..., list[ContractRow]]) -> None:
    fill("BTC", limit_expiries=1)
    clients = [communicator("/ws/chain/BTC/") for _ in range(150)]
    try:
        results = await asyncio.gather(*(client.connect(timeout=5) for client in clients), return_exceptions=True)
        assert all(result == (True, None) for result in results), [r for r in results if r != (True, None)][:2]
    finally:
        await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)


async def test_a_contract_listed_before_its_first_ticker_has_no_quotes_in_the_snapshot(
    redis_client: redis.Redis,
) -> None:
    contracts = real_contracts("SOL", limit_expiries=1)
    sync_instruments(redis_client, asset="SOL", contracts=contracts)
    client, snapshot = await connected("/ws/chain/SOL/")
    assert snapshot["rows"] == sorted(
        (static_row(contract) for contract in contracts), key=lambda row: (row["strike"], row["type"], row["settle"])
    )
    assert snapshot["feed"] == {
        "state": None,
        "index_price": None,
        "last_message_ts": None,
        "data_ts": None,
        "lag_p50_ms": None,
        "lag_p99_ms": None,
    }
    await client.disconnect()


@pytest.mark.slow
async def test_it_stays_connected_through_30_s_without_an_event(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis
) -> None:
    # channels-redis waits for an event with a 5 s blocking pop; with redis-py's default 5 s read
    # timeout every such wait raised TimeoutError and the connection closed with 1011.
    rows = fill("BTC", limit_expiries=1)
    client, _ = await connected("/ws/chain/BTC/")
    await asyncio.sleep(30)
    changed = repriced(rows[:2], mark=777.0)
    await publish(redis_client, build_chain_update(asset="BTC", rows=changed), rows=changed)
    update = await receive(client, timeout=5)
    assert update["type"] == "update"
    assert update["rows"] == changed
    await client.disconnect()


def with_group_expiry(layers: dict[str, Any], seconds: int) -> dict[str, Any]:
    """``CHANNEL_LAYERS`` with channels-redis forgetting a group member ``seconds`` after it (re)joined."""
    changed = copy.deepcopy(layers)
    changed["default"]["CONFIG"]["group_expiry"] = seconds
    return changed


@pytest.mark.slow
async def test_it_stays_in_its_group_through_several_group_expiries(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis, settings: SettingsWrapper
) -> None:
    # channels-redis drops a member that joined more than group_expiry ago at the next group_send
    # (24 h by default): a page open that long stopped updating, without a sign.
    settings.CHANNEL_LAYERS = with_group_expiry(settings.CHANNEL_LAYERS, 2)
    rows = fill("BTC", limit_expiries=1)
    client, _ = await connected("/ws/chain/BTC/")
    await asyncio.sleep(6.5)
    changed = repriced(rows[:2], mark=321.0)
    await publish(redis_client, build_chain_update(asset="BTC", rows=changed), rows=changed)
    update = await receive(client, timeout=5)
    assert update["type"] == "update"
    assert update["rows"] == changed
    await client.disconnect()


async def test_it_stops_renewing_its_group_membership_once_disconnected(
    fill: Callable[..., list[ContractRow]], redis_client: redis.Redis, settings: SettingsWrapper
) -> None:
    settings.CHANNEL_LAYERS = with_group_expiry(settings.CHANNEL_LAYERS, 3)  # renewed every second
    fill("BTC", limit_expiries=1)
    members = get_channel_layer()._group_key(chain_group("BTC"))  # channels-redis' key for the group
    client, _ = await connected("/ws/chain/BTC/")
    assert redis_client.zcard(members) == 1
    await client.disconnect()
    await asyncio.sleep(1.5)
    assert redis_client.zcard(members) == 0
