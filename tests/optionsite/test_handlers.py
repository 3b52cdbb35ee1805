"""HTTP through the project's ASGI handler: Django's stack in one hop, on a fixed pool of threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, iscoroutinefunction
from channels.testing import HttpCommunicator
from django.middleware.security import SecurityMiddleware

from optionsite.asgi import application
from optionsite.handlers import ThreadedASGIHandler


async def get(path: str, app: Any = application) -> dict[str, Any]:
    headers = [(b"host", b"localhost"), (b"accept", b"application/json")]
    return await HttpCommunicator(app, "GET", path, headers=headers).get_response(timeout=10)


@pytest.fixture
def requests_seen(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Callable[[str], threading.Event]]:
    """The thread each request's outermost middleware ran on; ``hold("?x")`` keeps requests for ``?x`` there."""
    threads: list[str] = []
    holds: dict[str, threading.Event] = {}
    process_request = SecurityMiddleware.process_request

    def observed(self: Any, request: Any) -> Any:
        threads.append(threading.current_thread().name)
        hold = holds.get(request.META["QUERY_STRING"])
        if hold is not None:
            assert hold.wait(timeout=10)
        return process_request(self, request)

    def hold(query: str) -> threading.Event:
        holds[query] = threading.Event()
        return holds[query]

    monkeypatch.setattr(SecurityMiddleware, "process_request", observed)
    return threads, hold


def test_its_middleware_chain_is_synchronous() -> None:
    handler = application.application_mapping["http"].app  # behind chain.answer_cache.AnswerCache
    assert isinstance(handler, ThreadedASGIHandler)
    assert not iscoroutinefunction(handler._middleware_chain)  # type: ignore[attr-defined]


async def test_a_request_crosses_to_its_thread_once_for_middleware_view_and_rendering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crossings: list[str] = []
    cross = SyncToAsync.__call__

    async def counted(self: SyncToAsync[Any, Any], *args: Any, **kwargs: Any) -> Any:
        crossings.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await cross(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    response = await get("/api/")

    assert response["status"] == 200
    headers = dict(response["headers"])
    assert headers[b"X-Frame-Options"] == b"DENY"  # the innermost middleware ran
    assert headers[b"X-Content-Type-Options"] == b"nosniff"  # and the outermost
    # Django's own handler: 15 crossings, one per middleware method, the view and the rendering.
    assert [name for name in crossings if not name.startswith("Signal.")] == ["BaseHandler.get_response"]


async def test_requests_share_a_fixed_pool_of_threads(requests_seen: tuple[list[str], Any]) -> None:
    threads, _ = requests_seen
    handler = ThreadedASGIHandler(threads=2)
    for _ in range(2):
        responses = await asyncio.gather(*(get("/api/", handler) for _ in range(10)))
        assert {response["status"] for response in responses} == {200}
    assert len(threads) == 20
    assert set(threads) <= {"http-0_0", "http-1_0"}


async def test_a_busy_thread_holds_up_only_its_own_request(requests_seen: tuple[list[str], Any]) -> None:
    _, hold = requests_seen
    handler = ThreadedASGIHandler(threads=2)
    slow = hold("slow")
    held = asyncio.ensure_future(get("/api/?slow", handler))
    assert (await get("/api/?quick", handler))["status"] == 200
    assert not held.done()
    slow.set()
    assert (await held)["status"] == 200


async def test_a_request_waits_for_a_free_thread(requests_seen: tuple[list[str], Any]) -> None:
    _, hold = requests_seen
    handler = ThreadedASGIHandler(threads=1)
    slow = hold("slow")
    held = asyncio.ensure_future(get("/api/?slow", handler))
    waiting = asyncio.ensure_future(get("/api/?next", handler))
    done, _ = await asyncio.wait([waiting], timeout=0.5)
    assert not done  # the only thread is held
    slow.set()
    assert [(await held)["status"], (await waiting)["status"]] == [200, 200]


async def test_it_answers_an_unknown_path_with_404() -> None:
    response = await get("/no-such-page/")
    assert response["status"] == 404


async def test_it_refuses_a_websocket_scope() -> None:
    with pytest.raises(ValueError, match="not websocket"):
        await ThreadedASGIHandler(threads=1)({"type": "websocket"}, None, None)


def test_the_loaded_project_is_left_out_of_garbage_collection() -> None:
    import gc

    import optionsite.asgi  # noqa: F401 - freezes what it loaded

    assert gc.get_freeze_count() > 10_000


async def test_a_request_finding_the_queue_full_is_answered_503_at_once(
    requests_seen: tuple[list[str], Callable[[str], threading.Event]],
) -> None:
    _, hold = requests_seen
    handler = ThreadedASGIHandler(threads=1, queue_limit=2, queue_timeout=30)
    held = hold("held")
    shed_before = handler.figures.shed_full
    running = asyncio.ensure_future(get("/api/?held", handler))
    await asyncio.sleep(0.2)  # it holds the one thread
    waiting = [asyncio.ensure_future(get("/api/", handler)) for _ in range(2)]
    await asyncio.sleep(0.2)
    assert handler.figures.waiting == 2

    started = asyncio.get_running_loop().time()
    refused = await get("/api/", handler)
    assert asyncio.get_running_loop().time() - started < 1, "answered at once, not after the queue"
    assert refused["status"] == 503
    assert dict(refused["headers"])[b"retry-after"] == b"1"
    assert handler.figures.shed_full == shed_before + 1

    held.set()
    responses = await asyncio.gather(running, *waiting)
    assert [response["status"] for response in responses] == [200, 200, 200], "the queued ones are served"


async def test_a_request_that_waited_too_long_for_a_thread_is_answered_503(
    requests_seen: tuple[list[str], Callable[[str], threading.Event]],
) -> None:
    _, hold = requests_seen
    handler = ThreadedASGIHandler(threads=1, queue_limit=10, queue_timeout=0.3)
    held = hold("held")
    shed_before = handler.figures.shed_waited
    running = asyncio.ensure_future(get("/api/?held", handler))
    await asyncio.sleep(0.2)
    refused = await get("/api/", handler)
    assert refused["status"] == 503
    assert handler.figures.shed_waited == shed_before + 1
    held.set()
    assert (await running)["status"] == 200
    assert (await get("/api/", handler))["status"] == 200, "the thread is back in the pool"
