"""Django's ASGI handler, serving HTTP as a threaded WSGI server would: a fixed pool of threads,
each request's middleware, view and rendering run in one hop to one of them, and a bounded queue
in front of them past which a request is answered 503 at once."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse, HttpRequest, HttpResponseBase

# What a shed request is told: the process is saturated, not the data unavailable; ask again shortly.
BUSY_RETRY_AFTER_SECONDS = 1
_BUSY_BODY = b'{"detail": "The server is busy; retry after 1 s."}'


@dataclass
class QueueFigures:
    """This process's request queue, for ``/api/stats/``: requests waiting for a thread now, and those shed."""

    waiting: int = 0
    shed_full: int = 0  # answered 503 because HTTP_QUEUE_LIMIT requests were waiting already
    shed_waited: int = 0  # answered 503 after waiting HTTP_QUEUE_TIMEOUT seconds for a thread


# One web server process serves one ASGI application; its handler counts here.
queue_figures = QueueFigures()


class ThreadedASGIHandler(ASGIHandler):
    """Runs each request's synchronous code in one hop, on one of ``HTTP_THREADS`` long-lived threads.

    Two costs of Django's own handler, measured serving the full BTC chain from one daphne
    process (docs/benchmarks.md):

    - **Hops.** It builds the middleware chain in async mode, but every middleware here is
      synchronous underneath (WhiteNoise can only be, Django's own run ``process_request``
      and ``process_response`` through ``sync_to_async``), as are the DRF views and their
      rendering: a request crossed between the event loop and a thread 15 times. Here the
      chain is loaded in sync mode and runs, view and rendering included, in one
      ``sync_to_async`` call, as under WSGI.
    - **A thread per request.** Its ``ThreadSensitiveContext`` gives every request a new
      thread, started and joined around the request, and 50 concurrent requests 50 threads
      taking turns at the GIL. Here a request takes one of ``HTTP_THREADS`` long-lived threads
      (asgiref's ``ThreadSensitiveContext(executor=...)``, one single-thread executor per
      request at a time), waiting on the event loop while all are busy, as a threaded WSGI
      server's backlog does. Its synchronous code, Django's request signals included, runs on
      that thread; database connections stay with their thread between requests, so
      ``CONN_MAX_AGE`` applies.

    A request that finds ``HTTP_QUEUE_LIMIT`` others waiting for a thread, or that waited
    ``HTTP_QUEUE_TIMEOUT`` seconds for one, is answered 503 with ``Retry-After`` by the handler
    itself, without running Django: a queue that grows without bound (18 s was seen, issue #13)
    serves every client late instead of most of them on time. ``queue_figures`` counts them.

    Reading the request, sending the response and noticing a disconnect stay Django's, on
    the event loop. ``ASGIHandler`` is not a public API: Django is pinned, and
    tests/optionsite/test_handlers.py checks the behaviour above.
    """

    def __init__(
        self, *, threads: int | None = None, queue_limit: int | None = None, queue_timeout: float | None = None
    ) -> None:
        super().__init__()
        self.queue_limit = settings.HTTP_QUEUE_LIMIT if queue_limit is None else queue_limit
        self.queue_timeout = settings.HTTP_QUEUE_TIMEOUT if queue_timeout is None else queue_timeout
        self.figures = queue_figures
        self._threads = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"http-{index}")
            for index in range(threads or settings.HTTP_THREADS)
        ]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.LifoQueue[ThreadPoolExecutor] = asyncio.LifoQueue()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        idle = self._idle_threads()
        figures = self.figures
        if idle.empty() and figures.waiting >= self.queue_limit:
            figures.shed_full += 1
            await self._busy(send)
            return
        figures.waiting += 1
        try:
            thread = await asyncio.wait_for(idle.get(), timeout=self.queue_timeout)
        except TimeoutError:
            figures.shed_waited += 1
            await self._busy(send)
            return
        finally:
            figures.waiting -= 1
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            idle.put_nowait(thread)

    async def _busy(self, send: Any) -> None:
        """503 with ``Retry-After``, sent by the handler: no thread, no middleware, no view."""
        headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", str(BUSY_RETRY_AFTER_SECONDS).encode()),
            (b"content-length", str(len(_BUSY_BODY)).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": _BUSY_BODY})

    def _idle_threads(self) -> asyncio.LifoQueue[ThreadPoolExecutor]:
        """The threads no request holds: last used, first reused (its caches are warm)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # daphne runs one event loop; tests start one per test
            self._loop, self._idle = loop, asyncio.LifoQueue()
            for thread in self._threads:
                self._idle.put_nowait(thread)
        return self._idle

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        response: Any = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        # As Django's: file responses are read in larger blocks; the server chunks them.
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response
