"""The browser's routes while Redis cannot be reached: the page says so and retries, WebSockets close cleanly.

The shared test Redis is never stopped: the settings are pointed at a port nobody listens on, or at a
private redis-server that a test stops (``optionsite.devstack.PrivateRedis``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from chain.consumers import CLOSE_REDIS_UNAVAILABLE
from ingest.throttled_log import RateLimitedLog

# Imported at collection: importing it runs django.setup(), whose logging setup would drop the log capture
# of the test that imports it first.
from optionsite.asgi import application
from optionsite.devstack import PrivateRedis, free_port, web_server_args

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
BASE_DIR = Path(__file__).resolve().parents[2]


def point_redis_at(settings: SettingsWrapper, url: str) -> None:
    """Every Redis the web process uses, the data reads and the channel layer, at ``url``."""
    settings.REDIS_URL = url
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    config = layers["default"]["CONFIG"]
    config["hosts"] = [{**host, "address": url} for host in config["hosts"]]
    settings.CHANNEL_LAYERS = layers  # channels drops its cached layers when this setting changes


@pytest.fixture
def redis_refused(settings: SettingsWrapper) -> None:
    point_redis_at(settings, f"redis://127.0.0.1:{free_port()}/0")


@pytest.fixture
def private_redis(settings: SettingsWrapper) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, which the test may stop."""
    server = PrivateRedis.start()
    point_redis_at(settings, server.url)
    yield server
    server.stop()


def communicator(path: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=[ORIGIN])


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.exc_info]


@pytest.mark.django_db
@pytest.mark.usefixtures("redis_refused")
def test_the_chain_page_answers_503_with_a_page_that_retries_by_itself(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = client.get("/chain/BTC/")

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "data is unavailable" in html
    assert '<meta http-equiv="refresh" content="10">' in html
    assert "cdn" not in html.lower()
    assert tracebacks(caplog) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("redis_refused")
def test_the_asset_indexes_answer_503_as_the_api_does(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    response = client.get("/chain/indexes.json")

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response.json() == {"detail": "Redis is unavailable"}
    assert tracebacks(caplog) == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("redis_refused")
async def test_a_handshake_is_refused_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    client = communicator("/ws/chain/BTC/")
    # Refused before it is accepted (daphne answers the handshake 403): the page backs off and retries.
    accepted, code = await client.connect(timeout=5)
    assert (accepted, code) == (False, CLOSE_REDIS_UNAVAILABLE)
    await client.wait(timeout=1)  # re-raises whatever the consumer raised
    assert tracebacks(caplog) == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_connected_clients_are_closed_with_4503_when_redis_goes_away(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chain import consumers

    monkeypatch.setattr(consumers, "outage_log", RateLimitedLog(logging.getLogger(consumers.__name__)))
    clients = [communicator("/ws/chain/BTC/") for _ in range(3)]
    for client in clients:
        assert (await client.connect(timeout=5))[0]
        assert (await client.receive_json_from(timeout=3))["type"] == "snapshot"

    private_redis.stop()
    for client in clients:
        closed = await client.receive_output(timeout=10)
        assert (closed["type"], closed.get("code")) == ("websocket.close", CLOSE_REDIS_UNAVAILABLE)
        await client.wait(timeout=1)
    assert tracebacks(caplog) == []
    outage_lines = [record for record in caplog.records if record.getMessage().startswith("Redis is unreachable")]
    assert len(outage_lines) == 1, "one line for the outage, not one per connection"


def run_daphne(*, redis_url: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """daphne starting on a fresh SQLite database and ``redis_url``; its output goes to ``daphne.log``."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=BASE_DIR, env=env, capture_output=True
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    with (directory / "daphne.log").open("wb") as log:
        daphne = subprocess.Popen(
            web_server_args(host="127.0.0.1", port=port),
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return daphne, f"http://127.0.0.1:{port}"


async def answering(session: aiohttp.ClientSession, url: str, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer 200"
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_daphne_closes_and_refuses_connections_cleanly_when_redis_goes_away(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    # Through a real server: daphne's autobahn refuses to send some close codes (1013 among them),
    # and it logs whatever escapes a consumer, once a second, then answers the handshake 500.
    daphne, base = run_daphne(redis_url=private_redis.url, directory=tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            await answering(session, f"{base}/chain/indexes.json")
            sockets = [await session.ws_connect(f"{base}/ws/chain/BTC/", origin=base) for _ in range(3)]
            for socket in sockets:
                assert (await socket.receive_json(timeout=5))["type"] == "snapshot"

            private_redis.stop()
            for socket in sockets:
                closed = await socket.receive(timeout=10)
                assert (closed.type, socket.close_code) == (aiohttp.WSMsgType.CLOSE, CLOSE_REDIS_UNAVAILABLE)
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{base}/ws/chain/BTC/", origin=base)
            assert refused.value.status == 403, "refused, not a 500"
            async with session.get(f"{base}/chain/BTC/") as page:
                assert page.status == 503
    finally:
        daphne.terminate()
        daphne.wait(timeout=15)
    log = (tmp_path / "daphne.log").read_text(errors="replace")
    assert "Traceback" not in log
    assert "Exception inside application" not in log
    assert "Redis is unreachable, closing with 4503" in log
