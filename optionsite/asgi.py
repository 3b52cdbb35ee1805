"""ASGI entry point: HTTP through Django, WebSockets through Channels' router."""

import gc
import os
from typing import Any, cast

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "optionsite.settings")
# Django must be set up before anything imports models (the consumers do); as
# ``get_asgi_application`` does, with the handler of ``optionsite.handlers``.
django.setup(set_prefix=False)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import get_resolver, re_path  # noqa: E402

from chain.answer_cache import AnswerCache  # noqa: E402
from chain.routing import websocket_urlpatterns  # noqa: E402
from optionsite.handlers import ThreadedASGIHandler  # noqa: E402
from optionsite.websocket_origins import SameOriginValidator  # noqa: E402

# HTTP's 404 + 4000, as the chain's close codes (docs/websocket.md, "Close codes").
CLOSE_NO_ROUTE = 4404


async def no_such_websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A WebSocket path that matches no route (``/ws/chain/``, ``/ws/nothing/``): accepted, then closed with
    4404. Without it Channels' router raises, and daphne logs a traceback and answers the handshake 500.
    Accepted first so that a browser sees the code (a refused handshake is only a 403 to it); a plain ASGI
    application, so that it answers whether Redis (the channel layer) does or not."""
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CLOSE_NO_ROUTE})


# Last, matching any path. Channels routes to ASGI applications; django-stubs types a route's target as a view.
no_route = re_path(r"", cast(Any, no_such_websocket))

application = ProtocolTypeRouter(
    {
        "http": AnswerCache(ThreadedASGIHandler()),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, no_route]))),
    }
)

# Load every URLconf and view module now, then leave all that was loaded out of the garbage
# collector's scans: a full collection of the ~110,000 objects a loaded project holds took
# ~80 ms, a pause every request in flight waited for (several times a minute under load);
# what requests create later is still collected.
get_resolver().url_patterns  # noqa: B018
gc.collect()
gc.freeze()
