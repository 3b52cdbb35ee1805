"""HTTP through the project's ASGI application: Django's stack, run synchronously in one hop."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import SyncToAsync, iscoroutinefunction
from channels.testing import HttpCommunicator

from optionsite.asgi import application
from optionsite.handlers import SyncStackASGIHandler


async def get(path: str) -> dict[str, Any]:
    headers = [(b"host", b"localhost"), (b"accept", b"application/json")]
    return await HttpCommunicator(application, "GET", path, headers=headers).get_response()


def test_its_middleware_chain_is_synchronous() -> None:
    handler = application.application_mapping["http"]
    assert isinstance(handler, SyncStackASGIHandler)
    assert not iscoroutinefunction(handler._middleware_chain)  # type: ignore[attr-defined]


async def test_a_request_crosses_to_its_worker_thread_once_for_middleware_view_and_rendering(
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


async def test_it_answers_an_unknown_path_with_404() -> None:
    response = await get("/no-such-page/")
    assert response["status"] == 404
