"""ASGI entry point: HTTP through Django, WebSockets through Channels' router."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "optionsite.settings")
# Django must be set up before anything imports models (the consumers do); as
# ``get_asgi_application`` does, with the handler of ``optionsite.handlers``.
django.setup(set_prefix=False)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from chain.routing import websocket_urlpatterns  # noqa: E402
from optionsite.handlers import ThreadedASGIHandler  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ThreadedASGIHandler(),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Load every URLconf and view module now, then leave all that was loaded out of the garbage
# collector's scans: a full collection of the ~110,000 objects a loaded project holds took
# ~80 ms, a pause every request in flight waited for (several times a minute under load);
# what requests create later is still collected.
get_resolver().url_patterns  # noqa: B018
gc.collect()
gc.freeze()
