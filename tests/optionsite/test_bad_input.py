"""Bad input gets a clear 4xx, never a 500 nor a connection dropped without a word (docs/api.md, "Errors").

The API's operations get the same inputs in tests/chain/test_fuzzing.py. Here: WebSocket paths that match no
route, Django's DEBUG error page, the JSON nesting limit, NULs in the admin's query string and in a cookie (on
PostgreSQL, where they failed), and the limits of daphne's HTTP parser. The PostgreSQL tests create a database
of their own on the server at ``TEST_POSTGRES_URL`` (default: the local server's ``postgres`` database); without
one answering they are skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from yarl import URL

from optionsite.devstack import free_port, web_server_args
from tests import postgres_database_url, postgres_maintenance

BASE_DIR = Path(__file__).resolve().parents[2]
ORIGIN = (b"origin", b"http://127.0.0.1:8000")
CLOSE_NO_ROUTE = 4404
STAFF_PASSWORD = "bad-input-" + secrets.token_hex(8)
NO_ROUTE_PATHS = ["/ws/nothing/", "/ws/chain/", "/ws/chain/BTC/extra/", "/", "/api/stats/"]


# --- WebSocket paths that match no route ------------------------------------------------------------------


def communicator(path: str, *, origin: tuple[bytes, bytes] = ORIGIN) -> WebsocketCommunicator:
    from optionsite.asgi import application

    return WebsocketCommunicator(application, path, headers=[origin])


@pytest.mark.parametrize("path", NO_ROUTE_PATHS)
async def test_it_accepts_then_closes_a_websocket_with_no_route_with_4404(path: str) -> None:
    client = communicator(path)
    accepted, _ = await client.connect(timeout=5)
    assert accepted
    assert await client.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_NO_ROUTE}
    await client.wait(timeout=1)  # re-raises whatever the application raised


async def test_it_still_refuses_a_websocket_with_no_route_from_another_site() -> None:
    client = communicator("/ws/nothing/", origin=(b"origin", b"https://elsewhere.example"))
    accepted, _ = await client.connect(timeout=5)
    assert not accepted
    await client.wait(timeout=1)


# --- DEBUG, JSON nesting, the admin's query string (in process) ---------------------------------------------


@pytest.fixture
def superuser_client(client: Client, django_user_model: Any) -> Client:
    client.force_login(django_user_model.objects.create_superuser("staff", "staff@example.com", STAFF_PASSWORD))
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/stats/", "/admin/login/", "/api-auth/login/"])
def test_it_answers_400_to_more_than_1000_query_parameters_under_debug(
    client: Client, settings: SettingsWrapper, path: str
) -> None:
    # Django's DEBUG error page read request.GET again, which raised again: a 500, or an exception here.
    settings.DEBUG = True
    response = client.get(path, {f"p{index}": "1" for index in range(1001)})
    assert response.status_code == 400
    assert b"TooManyFieldsSent" in response.content


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.django_db
def test_it_reads_json_1024_levels_deep_and_refuses_one_level_more(superuser_client: Client) -> None:
    # Python's own parser raised RecursionError (a 500) below 1,024 levels already.
    read = superuser_client.post("/api/assets/", nested_json(1024), content_type="application/json")
    assert read.status_code == 400
    assert read.json() == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}
    refused = superuser_client.post("/api/assets/", nested_json(1025), content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("JSON parse error - depth limit exceeded")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/admin/assets/asset/?symbol=%00",
        "/admin/assets/asset/?display_name__startswith=a%00",
        "/admin/auth/user/?username=%00",
        "/admin/autocomplete/?term=%00&app_label=auth&model_name=user&field_name=groups",
    ],
)
def test_it_refuses_a_nul_in_the_admins_query_string(superuser_client: Client, path: str) -> None:
    response = superuser_client.get(path)
    assert response.status_code == 400
    assert response.content == b"A NUL character (%00) in the admin's query string is refused.\n"


# --- Through daphne ---------------------------------------------------------------------------------------


@dataclass
class WebServer:
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exchange(self, request: bytes) -> bytes:
        """Everything the server sends back for ``request`` until it closes the connection."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as connection:
            connection.sendall(request)
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            return answer


def manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]


@contextlib.contextmanager
def running_daphne(*, database_url: str, directory: Path) -> Iterator[WebServer]:
    """daphne as the launchers start it, on a migrated ``database_url`` with a superuser ``staff``."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_DEBUG": "0",
        "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD,
        "PYTHONUNBUFFERED": "1",
    }
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "createsuperuser", "--noinput", "--username", "staff", "--email", "staff@example.com")
    port = free_port()
    log = directory / "daphne.log"
    with log.open("wb") as output:
        daphne = subprocess.Popen(
            web_server_args(host="127.0.0.1", port=port),
            cwd=BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert daphne.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, f"daphne does not listen on port {port}"
            time.sleep(0.2)
        yield WebServer(port=port, log=log)
    finally:
        daphne.terminate()
        daphne.wait(timeout=15)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    directory = tmp_path_factory.mktemp("daphne")
    with running_daphne(database_url=f"sqlite:///{directory / 'db.sqlite3'}", directory=directory) as server:
        yield server


def tracebacks(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "Traceback" in line]


@pytest.mark.slow
async def test_daphne_closes_a_websocket_with_no_route_with_4404_without_a_traceback(web_server: WebServer) -> None:
    # Before: Channels' router raised, daphne logged the traceback and answered the handshake 500.
    async with aiohttp.ClientSession() as session:
        for path in NO_ROUTE_PATHS:
            async with session.ws_connect(f"{web_server.base}{path}", origin=web_server.base) as websocket:
                closed = await websocket.receive(timeout=5)
                assert (closed.type, websocket.close_code) == (aiohttp.WSMsgType.CLOSE, CLOSE_NO_ROUTE), path
    assert tracebacks(web_server.log) == []


def request_head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def head_of_size(size: int) -> bytes:
    """A GET whose request line and header lines add up to ``size`` bytes (line ends not counted), none of
    them longer than 16,384 bytes."""
    lines = ["GET /api/health/live/ HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    padding = size - sum(map(len, lines)) - len("X-Padding: ")
    return request_head(*lines, "X-Padding: " + "p" * padding)


# docs/api.md, "Errors": Twisted's HTTP parser, which daphne runs, has no hook for a 414 or a 431.
@pytest.mark.slow
def test_daphne_reads_a_request_head_of_16384_bytes(web_server: WebServer) -> None:
    assert web_server.exchange(head_of_size(16384)).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.slow
def test_daphne_answers_a_bare_400_to_a_request_head_over_16384_bytes(web_server: WebServer) -> None:
    assert web_server.exchange(head_of_size(16385)) == b"HTTP/1.1 400 Bad Request\r\n\r\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_bytes",
    [
        request_head(
            "GET /api/health/live/ HTTP/1.1",
            "Host: 127.0.0.1",
            "Connection: close",
            *(f"X-Header-{index}: 1" for index in range(499)),  # with Host and Connection: 501
        ),
        request_head("GET /api/health/live/ HTTP/1.1", "Host: 127.0.0.1", "Authorization: Token ab\x00cd"),
    ],
    ids=["501 headers", "a NUL in a header"],
)
def test_daphne_answers_a_bare_400_to_too_many_headers_or_a_nul_in_one(
    web_server: WebServer, request_bytes: bytes
) -> None:
    assert web_server.exchange(request_bytes) == b"HTTP/1.1 400 Bad Request\r\n\r\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_bytes",
    [
        request_head("GET /api/health/live/?q=" + "q" * 16400 + " HTTP/1.1", "Host: 127.0.0.1"),
        request_head("GET /api/health/live/ HTTP/1.1", "Host: 127.0.0.1", "X-Long: " + "x" * 16377),
    ],
    ids=["request line", "header line"],
)
def test_daphne_closes_the_connection_without_an_answer_on_a_line_over_16384_bytes(
    web_server: WebServer, request_bytes: bytes
) -> None:
    assert web_server.exchange(request_bytes) == b""


# --- On PostgreSQL ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A database of its own on the server at ``POSTGRES_URL``, dropped afterwards."""
    maintenance = postgres_maintenance()
    name = f"optionsite_bad_input_{secrets.token_hex(4)}"
    with maintenance:
        maintenance.execute(f'CREATE DATABASE "{name}"')
        try:
            yield postgres_database_url(name)
        finally:
            maintenance.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def postgres_web_server(postgres_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    with running_daphne(database_url=postgres_database, directory=tmp_path_factory.mktemp("pg")) as server:
        yield server


async def admin_session(server: WebServer) -> aiohttp.ClientSession:
    """A session logged in to the admin as ``staff``, through its login form."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # unsafe: cookies of an IP host
    async with session.get(f"{server.base}/admin/login/") as page:
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', await page.text())
        assert found, "no CSRF token in the login form"
    form = {"csrfmiddlewaretoken": found[1], "username": "staff", "password": STAFF_PASSWORD, "next": "/admin/"}
    async with session.post(f"{server.base}/admin/login/", data=form) as login:
        assert (login.status, login.url.path) == (200, "/admin/"), await login.text()
    return session


@pytest.mark.slow
async def test_on_postgresql_a_nul_in_an_admin_filter_is_a_400(postgres_web_server: WebServer) -> None:
    # Before: psycopg's DataError ("PostgreSQL text fields cannot contain NUL (0x00) bytes"), a 500.
    session = await admin_session(postgres_web_server)
    async with session:
        for query in ("symbol=%00", "display_name__startswith=a%00"):
            url = URL(f"{postgres_web_server.base}/admin/assets/asset/?{query}", encoded=True)
            async with session.get(url) as changelist:
                assert changelist.status == 400, query
        async with session.get(f"{postgres_web_server.base}/admin/assets/asset/?symbol=BTC") as changelist:
            assert changelist.status == 200
    assert tracebacks(postgres_web_server.log) == []


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/api/assets/", "/api/stats/", "/admin/"])
def test_on_postgresql_a_nul_in_the_session_cookie_is_a_400(postgres_web_server: WebServer, path: str) -> None:
    # Django decodes the quoted cookie's octal escape to a NUL; before, looking the session up was a 500.
    request = request_head(
        f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", r'Cookie: sessionid="abcdefgh\000ijkl"'
    )
    assert postgres_web_server.exchange(request).startswith(b"HTTP/1.1 400 Bad Request\r\n")
