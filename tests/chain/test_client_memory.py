"""What clients can cost the web server in memory, measured on a real server process (``python -m
optionsite.webserver``, the project's settings, the test Redis) while whole-chain updates flow as the
ingest sends them (BTC's 778 contracts, 4 flushes a second, ~600 KB of JSON each).

* Clients that acknowledge without reading: what they make the server hold is bounded by what its
  write buffers really hold, not by their word.
* Connections opened and dropped in rounds: what stays after they close levels off.

Memory is the server's resident set (``VmRSS``); the bounds have margins for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from channels.layers import get_channel_layer

from ingest.events import build_chain_update
from ingest.keys import chain_group
from ingest.normalize import ContractRow, apply_ticker
from optionsite.devstack import free_port, web_server_args

pytestmark = pytest.mark.slow

BASE_DIR = Path(__file__).resolve().parents[2]
MiB = 2**20


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class WebServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def resident_mib(self) -> float:
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        return resident_mib(self.process.pid)


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database (the migrations enable BTC) for the server processes of this module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'db.sqlite3'}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        timeout=120,
    )
    return url


@pytest.fixture
def web_server(database_url: str, tmp_path: Path) -> Iterator[WebServer]:
    """The project's web server on a free port, started as every launcher starts it."""
    port = free_port()
    log = tmp_path / "webserver.log"
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_DEBUG": "0"}
    with log.open("wb") as output:
        args = web_server_args(host="127.0.0.1", port=port)
        process = subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.2)
        yield WebServer(process=process, port=port, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def whole_chain_updates(rows: list[ContractRow], *, every: float = 0.25) -> AsyncIterator[None]:
    """Every contract of the chain changes at every flush, sent to the group as the ingest sends it."""

    async def publish() -> None:
        layer = get_channel_layer()
        for mark in range(1, 10**6):
            now = int(time.time() * 1000)
            changed = [apply_ticker(row, {"markPrice": str(mark)}, ts=now, received_ts=now) for row in rows]
            await layer.group_send(chain_group("BTC"), build_chain_update(asset="BTC", rows=changed))
            await asyncio.sleep(every)

    task = asyncio.create_task(publish())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class RawWebSocket:
    """A WebSocket client on a plain socket, which reads only when told to: the frames the server sends
    stay in the socket (and behind it, in the server) until then."""

    sock: socket.socket
    unread: bytearray = field(default_factory=bytearray)

    @classmethod
    async def connect(cls, server: WebServer, path: str, *, receive_buffer: int | None = None) -> RawWebSocket:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {server.origin}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        client = cls(sock)
        while b"\r\n\r\n" not in client.unread:
            client.unread += await client.receive_some()
        head, _, rest = bytes(client.unread).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client.unread = bytearray(rest)
        return client

    async def receive_some(self) -> bytes:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        if not data:
            raise ConnectionError("closed by the server")
        return data

    async def send_text(self, text: str) -> None:
        payload = text.encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        await asyncio.get_running_loop().sock_sendall(self.sock, bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    async def receive_text(self) -> dict[str, Any]:
        """The next text frame, decoded (control frames skipped; the server does not fragment)."""
        while True:
            while len(self.unread) < 2:
                self.unread += await self.receive_some()
            opcode, length, start = self.unread[0] & 0x0F, self.unread[1] & 0x7F, 2
            if length >= 126:
                size = 2 if length == 126 else 8
                while len(self.unread) < 2 + size:
                    self.unread += await self.receive_some()
                (length,) = struct.unpack(">H" if size == 2 else ">Q", self.unread[2 : 2 + size])
                start += size
            while len(self.unread) < start + length:
                self.unread += await self.receive_some()
            payload = bytes(self.unread[start : start + length])
            del self.unread[: start + length]
            if opcode == 0x1:
                return orjson.loads(payload)

    def reset(self) -> None:
        """Drop the connection at once (TCP reset), unread data and all."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


async def read_a_snapshot(server: WebServer) -> None:
    """One client that connects, reads its whole-chain snapshot and leaves: the server has then
    imported and allocated what any connection needs, so that what follows measures clients only."""
    client = await RawWebSocket.connect(server, "/ws/chain/BTC/")
    frame = await asyncio.wait_for(client.receive_text(), timeout=30)
    assert frame["type"] == "snapshot"
    client.reset()


# Five clients that acknowledge what they were never sent nor read. Each may make the server hold
# MAX_BUFFERED_BYTES (2 MiB) plus one message (a whole BTC chain, ~0.6 MB): ~13 MB for the five; the rest
# of the bound is the allocator's slack and the machine's noise. Before the server counted its write
# buffers, the same clients grew it by 241 MiB in 24 s, and on (the test stops at 240).
LYING_CLIENTS = 5
LYING_SECONDS = 25
LYING_GROWTH_BOUND_MIB = 60


async def test_it_bounds_what_clients_that_acknowledge_without_reading_can_make_it_hold(
    web_server: WebServer, btc_chain: list[ContractRow]
) -> None:
    async with whole_chain_updates(btc_chain):
        await read_a_snapshot(web_server)
        await asyncio.sleep(1)
        before = web_server.resident_mib()
        # A receive buffer of a few KiB: the server's frames pile up in its own buffers, not in this process.
        liars = [
            await RawWebSocket.connect(web_server, "/ws/chain/BTC/", receive_buffer=4096) for _ in range(LYING_CLIENTS)
        ]
        growth: list[float] = []
        started = time.monotonic()
        seq = 0
        while time.monotonic() - started < LYING_SECONDS:
            # Frame numbers come one after the other: acknowledging 1, 2, 3, ... five a second stays
            # behind what the server sends (two frames per update, four updates a second) and so is
            # always accepted, as a client that read everything would be.
            seq += 1
            for liar in liars:
                await liar.send_text(orjson.dumps({"type": "ack", "seq": seq}).decode())
            await asyncio.sleep(0.2)
            growth.append(web_server.resident_mib() - before)
            if growth[-1] > 4 * LYING_GROWTH_BOUND_MIB:
                break  # failed already; spare the machine
        elapsed = time.monotonic() - started
        print(f"growth with {LYING_CLIENTS} lying clients: up to {max(growth):.0f} MiB in {elapsed:.0f} s")
        half_way = growth[len(growth) // 2]
        assert max(growth) < LYING_GROWTH_BOUND_MIB, (
            f"the server grew by {max(growth):.0f} MiB in {elapsed:.0f} s (by {half_way:.0f} MiB half way)"
        )

        # Still connected: one of them reads at last, acknowledging what it reads, and gets the chain as it
        # is now in one snapshot, not the backlog.
        reader = liars.pop()
        for liar in liars:
            liar.reset()
        deadline = time.monotonic() + 30
        while True:
            frame = await asyncio.wait_for(reader.receive_text(), timeout=max(0.1, deadline - time.monotonic()))
            if frame["type"] == "error":  # an acknowledgement above what was sent
                continue
            await reader.send_text(orjson.dumps({"type": "ack", "seq": frame["seq"]}).decode())
            if frame["type"] == "snapshot" and frame["reason"] == "resync":
                break
        reader.reset()


# Rounds of connections opened and dropped while updates flow, three in four closed by their client after
# the first frame (a tab closed), the others reset without reading anything, and one client that stays. The
# first round raises the server to the high-water mark of its allocator; later rounds reuse that memory.
# Before the fixes, 58 of the 600 connections were still in the group afterwards (their consumers had ended
# in a traceback before leaving it: optionsite/webserver.py), and the channel layer went on keeping every
# update for them: +58 MiB in the 15 s after the rounds (optionsite/channel_layer.py).
ROUNDS = 6
CONNECTIONS_PER_ROUND = 100
# daphne kills an application that has not ended 10 s after its connection closed, before it leaves its
# group: on an overloaded machine a consumer still connecting may be among them (not what this test is about).
MEMBERS_LEFT_AT_MOST = CONNECTIONS_PER_ROUND * ROUNDS // 100
# Whole-chain updates go on for this long after the last round. A departed connection still handed them would
# pin each one (1.5 MB of Python objects, 4 a second); what nobody holds is freed and its memory reused.
IDLE_SECONDS = 15
IDLE_GROWTH_BOUND_MIB = 20


async def test_what_connections_opened_and_dropped_leave_behind_levels_off(
    web_server: WebServer, btc_chain: list[ContractRow], redis_client: redis.Redis
) -> None:
    path = "/ws/chain/BTC/"

    async def closed_after_the_first_frame(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(f"{web_server.origin}{path}", origin=web_server.origin, max_msg_size=0) as ws:
            message = await ws.receive(timeout=60)
            assert message.type == aiohttp.WSMsgType.TEXT, message

    async def reset_unread() -> None:
        client = await RawWebSocket.connect(web_server, path, receive_buffer=4096)
        await asyncio.sleep(0.5)
        client.reset()

    async def watching(session: aiohttp.ClientSession) -> None:
        """A client that stays through it all, reading and acknowledging (so that the server goes on
        handling the updates as it does while anyone is connected)."""
        async with session.ws_connect(f"{web_server.origin}{path}", origin=web_server.origin, max_msg_size=0) as ws:
            async for message in ws:
                await ws.send_str(orjson.dumps({"type": "ack", "seq": orjson.loads(message.data)["seq"]}).decode())

    async with (
        whole_chain_updates(btc_chain),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        await read_a_snapshot(web_server)
        watcher = asyncio.create_task(watching(session))
        await asyncio.sleep(1)
        resident = [web_server.resident_mib()]
        for _ in range(ROUNDS):
            closed = [closed_after_the_first_frame(session) for _ in range(CONNECTIONS_PER_ROUND * 3 // 4)]
            reset = [reset_unread() for _ in range(CONNECTIONS_PER_ROUND - len(closed))]
            round_of_clients = asyncio.gather(*closed, *reset)
            await asyncio.wait_for(round_of_clients, timeout=60)
            await asyncio.sleep(1)
            resident.append(web_server.resident_mib())
        # Then only the watcher for a while, updates still flowing: nothing else should be holding them.
        await asyncio.sleep(IDLE_SECONDS)
        resident.append(web_server.resident_mib())
        members = redis_client.zcard(get_channel_layer()._group_key(chain_group("BTC"))) - 1  # the watcher
        assert not watcher.done(), watcher
        watcher.cancel()

    figures = " → ".join(f"{mib:.0f}" for mib in resident)
    print(f"resident MiB before, after each round and {IDLE_SECONDS} s later: {figures}; {members} left in the group")
    assert members <= MEMBERS_LEFT_AT_MOST, f"{members} of {ROUNDS * CONNECTIONS_PER_ROUND} closed connections"
    assert resident[-1] - resident[-2] < IDLE_GROWTH_BOUND_MIB, f"resident MiB: {figures}"
    # The last three rounds add less than the first did (or 30 MiB, when the first added little). Not 0: a round
    # with more connections at once than any before adds Redis connections to the channel layer's pool, and
    # memory to the allocator's high-water mark.
    assert resident[-2] - resident[-5] < max(resident[1] - resident[0], 30), f"resident MiB: {figures}"
