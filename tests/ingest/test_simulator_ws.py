"""The option WebSocket: subscriptions, pushes, heartbeats and limits, seen by pybit and by a bare client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket
from pybit.unified_trading import WebSocket

from ingest.simulator import RunningSimulator
from ingest.simulator.market import TICKER_FIELDS

TICKER_ID = r"tickers\.(?P<symbol>.+)-(?P<seq>\d+)-(?P<ts>\d{13})"


class BareClient:
    """websocket-client without pybit on top: every frame as it arrives, including the ones pybit hides."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=5)

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def receive(self, timeout: float = 5.0) -> Any:
        self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def receive_until(self, condition: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(max(deadline - time.monotonic(), 0.01))
            if condition(message):
                return message
        raise AssertionError("no such message")

    def reply_to(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send a request and return the next frame that is not a ticker push."""
        self.send(request)
        return self.receive_until(lambda message: "topic" not in message)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def bare_client() -> Any:
    clients: list[BareClient] = []

    def connect(ws_url: str) -> BareClient:
        client = BareClient(ws_url)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def test_pybit_receives_full_snapshots_of_1500_topics_subscribed_in_chunks(
    start_simulator: Callable[..., RunningSimulator], pybit_websocket: Callable[..., WebSocket], wait_for: Any
) -> None:
    simulator = start_simulator(rate_hz=2)
    symbols = (simulator.live_symbols("BTC") + simulator.live_symbols("ETH") + simulator.live_symbols("SOL"))[:1500]
    latest: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def on_ticker(message: dict[str, Any]) -> None:
        with lock:
            latest[message["data"]["symbol"]] = message

    ws = pybit_websocket(simulator.ws_url)
    for start in range(0, 1500, 500):
        ws.ticker_stream(symbol=symbols[start : start + 500], callback=on_ticker)
    wait_for(lambda: len(latest) == 1500, timeout=15, message="a snapshot of every topic")
    assert simulator.topics_per_connection() == [1500]
    now_ms = time.time() * 1000
    with lock:
        for symbol, message in latest.items():
            assert message["topic"] == f"tickers.{symbol}"
            assert message["type"] == "snapshot"
            assert abs(message["ts"] - now_ms) < 10_000
            assert list(message["data"]) == list(TICKER_FIELDS)
            assert all(isinstance(value, str) for value in message["data"].values())


def test_it_stamps_each_push_with_a_sequence_id_and_the_wall_clock(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient]
) -> None:
    client = bare_client(simulator.ws_url)
    symbols = simulator.live_symbols("BTC")[:4]
    client.reply_to({"op": "subscribe", "args": [f"tickers.{s}" for s in symbols]})
    pushes = [client.receive_until(lambda message: "topic" in message) for _ in range(12)]
    sequences = []
    for push in pushes:
        assert list(push) == ["id", "topic", "ts", "data", "type"], "key order as on the wire"
        symbol = push["data"]["symbol"]
        assert push["topic"] == f"tickers.{symbol}"
        prefix, seq, ts = push["id"].rsplit("-", 2)
        assert prefix == push["topic"]
        assert int(ts) == push["ts"]
        assert abs(push["ts"] - time.time() * 1000) < 2000
        sequences.append(int(seq))
    assert sequences == sorted(sequences)
    assert {push["data"]["symbol"] for push in pushes} == set(symbols)


def test_it_answers_subscribe_with_the_option_command_resp(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient]
) -> None:
    client = bare_client(simulator.ws_url)
    good = f"tickers.{simulator.live_symbols('ETH')[0]}"
    reply = client.reply_to({"op": "subscribe", "req_id": "sub-1", "args": [good, "publicTrade.ETH"]})
    assert reply["success"] is True
    assert reply["type"] == "COMMAND_RESP"
    assert reply["data"] == {"failTopics": [], "successTopics": [good, "publicTrade.ETH"]}
    assert reply["conn_id"]
    assert "op" not in reply
    assert "ret_msg" not in reply
    assert "req_id" not in reply


def test_it_puts_unknown_and_malformed_topics_in_fail_topics(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient]
) -> None:
    client = bare_client(simulator.ws_url)
    symbol = simulator.live_symbols("BTC")[0]
    bad = ["tickers.BTC-1JAN20-1-C", f"orderbook.25.{symbol}", "tickers.", "", "tickers.BTC", "publicTrade.DOGE"]
    reply = client.reply_to({"op": "subscribe", "args": [*bad, f"tickers.{symbol}"]})
    assert reply["success"] is False
    assert reply["data"] == {"failTopics": bad, "successTopics": [f"tickers.{symbol}"]}
    assert "ret_msg" not in reply
    assert simulator.topics_per_connection() == [1]


def test_it_confirms_unsubscribe_with_command_resp_and_stops_pushing(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient]
) -> None:
    client = bare_client(simulator.ws_url)
    first, second = (f"tickers.{s}" for s in simulator.live_symbols("SOL")[:2])
    client.reply_to({"op": "subscribe", "args": [first, second]})
    reply = client.reply_to({"op": "unsubscribe", "args": [first, "tickers.never-subscribed"]})
    assert reply == {
        "success": False,
        "conn_id": reply["conn_id"],
        "data": {"failTopics": ["tickers.never-subscribed"], "successTopics": [first]},
        "type": "COMMAND_RESP",
    }
    topics = {client.receive_until(lambda message: "topic" in message)["topic"] for _ in range(10)}
    assert topics == {second}


def test_it_answers_a_json_ping_with_the_option_pong(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient]
) -> None:
    client = bare_client(simulator.ws_url)
    pong = client.reply_to({"op": "ping", "req_id": "hb-1"})
    assert pong["op"] == "pong"
    (stamp,) = pong["args"]
    assert isinstance(stamp, str)
    assert abs(int(stamp) - time.time() * 1000) < 2000
    assert pong["req_id"] == "hb-1"
    assert "ret_msg" not in pong


def test_it_answers_rfc6455_ping_frames(simulator: RunningSimulator, bare_client: Callable[[str], BareClient]) -> None:
    client = bare_client(simulator.ws_url)
    client.ws.ping(b"are you there")
    opcode, frame = client.ws.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_PONG
    assert frame.data == b"are you there"


def test_pybit_stays_connected_through_its_own_heartbeats(
    simulator: RunningSimulator, pybit_websocket: Callable[..., WebSocket], wait_for: Any
) -> None:
    received: list[dict[str, Any]] = []
    ws = pybit_websocket(simulator.ws_url, ping_interval=1, ping_timeout=0.9, callback_function=received.append)
    ws.ticker_stream(symbol=simulator.live_symbols("BTC")[:2], callback=lambda message: None)
    time.sleep(2.5)
    assert ws.is_connected()
    state = simulator.state()
    assert state["connections_opened"] == 1
    (connection,) = state["connections"]
    assert connection["control_pings"] >= 1, "websocket-client pings with control frames"
    assert connection["json_pings"] >= 1, "pybit answers each pong frame with a JSON ping"
    assert sum(1 for message in received if "topic" in message) > 10
    assert not any(message.get("op") == "pong" for message in received), "pybit drops the option pong"


def test_it_refuses_more_than_2000_topics_on_one_connection(
    start_simulator: Callable[..., RunningSimulator], bare_client: Callable[[str], BareClient]
) -> None:
    simulator = start_simulator(assets=("BTC", "ETH", "SOL", "XRP"))
    topics = [f"tickers.{s}" for base in ("BTC", "ETH", "SOL", "XRP") for s in simulator.live_symbols(base)]
    assert len(topics) > 2000
    client = bare_client(simulator.ws_url)
    for start in range(0, 2000, 500):
        reply = client.reply_to({"op": "subscribe", "args": topics[start : start + 500]})
        assert reply["success"] is True
    reply = client.reply_to({"op": "subscribe", "args": [topics[2000]]})
    assert reply["success"] is False
    assert reply["data"] == {"failTopics": [topics[2000]], "successTopics": []}
    assert simulator.topics_per_connection() == [2000]
    assert client.reply_to({"op": "ping"})["op"] == "pong", "the connection lives on"


def test_it_refuses_a_request_whose_args_exceed_21000_characters(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient]
) -> None:
    topics = [f"tickers.{s}" for s in simulator.live_symbols("BTC")[:700]]
    assert len(json.dumps(topics, separators=(",", ":"))) > 21_000
    client = bare_client(simulator.ws_url)
    reply = client.reply_to({"op": "subscribe", "args": topics})
    assert reply["success"] is False
    assert reply["data"]["failTopics"] == topics
    assert simulator.topics_per_connection() == [0]
    assert client.reply_to({"op": "subscribe", "args": topics[:500]})["success"] is True


def test_it_can_refuse_over_limit_requests_in_the_ret_msg_shape(
    start_simulator: Callable[..., RunningSimulator], bare_client: Callable[[str], BareClient]
) -> None:
    simulator = start_simulator(max_topics_per_connection=2, over_limit_reply="ret_msg")
    topics = [f"tickers.{s}" for s in simulator.live_symbols("BTC")[:3]]
    reply = bare_client(simulator.ws_url).reply_to({"op": "subscribe", "req_id": "r1", "args": topics})
    assert reply == {
        "success": False,
        "ret_msg": "args size >2",
        "conn_id": reply["conn_id"],
        "req_id": "r1",
        "op": "subscribe",
    }


def test_it_can_close_the_connection_on_an_over_limit_request(
    start_simulator: Callable[..., RunningSimulator], bare_client: Callable[[str], BareClient]
) -> None:
    simulator = start_simulator(max_topics_per_connection=2, over_limit_reply="close")
    client = bare_client(simulator.ws_url)
    client.send({"op": "subscribe", "args": [f"tickers.{s}" for s in simulator.live_symbols("BTC")[:3]]})
    client.ws.settimeout(5)
    opcode, frame = client.ws.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1008


@pytest.mark.parametrize(
    ("request_text", "expected_op"),
    [
        ("this is not json", ""),
        ("[1, 2, 3]", ""),
        ('{"op": "fly"}', "fly"),
        ('{"op": "subscribe", "args": "tickers.X"}', "subscribe"),
        ('{"op": "subscribe", "args": []}', "subscribe"),
        ('{"op": "unsubscribe", "args": [1, 2]}', "unsubscribe"),
    ],
)
def test_it_answers_bad_requests_with_an_error_and_keeps_serving(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient], request_text: str, expected_op: str
) -> None:
    client = bare_client(simulator.ws_url)
    reply = client.reply_to(request_text)  # type: ignore[arg-type]
    assert reply["success"] is False
    assert reply["ret_msg"]
    assert reply["op"] == expected_op
    symbol = simulator.live_symbols("BTC")[0]
    assert client.reply_to({"op": "subscribe", "args": [f"tickers.{symbol}"]})["success"] is True


def test_it_answers_binary_frames_with_an_error(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient]
) -> None:
    client = bare_client(simulator.ws_url)
    client.ws.send_binary(b"\x00\x01")
    assert client.receive()["success"] is False
    assert client.reply_to({"op": "ping"})["op"] == "pong"


def test_it_publishes_option_trades_per_base_coin(
    simulator: RunningSimulator, bare_client: Callable[[str], BareClient]
) -> None:
    client = bare_client(simulator.ws_url)
    client.reply_to({"op": "subscribe", "args": ["publicTrade.BTC"]})
    message = client.receive_until(lambda message: message.get("topic") == "publicTrade.BTC", timeout=10)
    assert message["type"] == "snapshot"
    assert message["id"].startswith("publicTrade.BTC-")
    for trade in message["data"]:
        assert trade["s"] in simulator.live_symbols("BTC")
        assert trade["S"] in ("Buy", "Sell")
        assert {"i", "T", "p", "v", "mP", "iP", "mIv", "iv", "BT"} <= set(trade)


def test_bench_mode_pushes_valid_frames_that_vary(
    start_simulator: Callable[..., RunningSimulator], bare_client: Callable[[str], BareClient]
) -> None:
    simulator = start_simulator(bench=True, rate_hz=0, assets=("SOL",))
    symbols = simulator.live_symbols("SOL")[:50]
    client = bare_client(simulator.ws_url)
    client.reply_to({"op": "subscribe", "args": [f"tickers.{s}" for s in symbols]})
    versions: dict[str, set[str]] = {}
    for _ in range(2000):
        push = client.receive()
        assert list(push["data"]) == list(TICKER_FIELDS)
        versions.setdefault(push["data"]["symbol"], set()).add(push["data"]["markPrice"])
    assert set(versions) == set(symbols)
    assert all(len(marks) > 1 for marks in versions.values())
