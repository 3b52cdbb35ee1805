"""Django's ASGI handler, with each request's middleware, view and rendering in one thread hop."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse, HttpRequest, HttpResponseBase


class SyncStackASGIHandler(ASGIHandler):
    """Runs the middleware stack as under WSGI: synchronously, in the request's own thread.

    Django's ASGI handler builds its middleware chain in async mode. Every middleware here
    is synchronous underneath (WhiteNoise can only run synchronously, and Django's own
    middleware run their ``process_request`` and ``process_response`` through
    ``sync_to_async`` in async mode), as are the DRF views and their rendering, so a request
    crossed between the event loop and its worker thread a dozen times. Here it crosses once:
    the whole chain, view and rendering included, runs in one ``sync_to_async`` call, in the
    thread Django gives each request (``ThreadSensitiveContext``). Reading, sending and
    disconnect handling stay Django's, on the event loop.

    Measured on the full BTC chain from one daphne process: ~125 → ~170 req/s (docs/benchmarks.md).
    ``ASGIHandler`` is not a public API (Django is pinned; tests/optionsite/test_handlers.py).
    """

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        response: Any = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        # As Django's: file responses are read in larger blocks; the server chunks them.
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response
