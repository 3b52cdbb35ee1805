"""ASGI entry point: HTTP through Django, WebSockets through Channels' router."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "optionsite.settings")
# Django must be set up before anything imports models (the consumers do); as
# ``get_asgi_application`` does, with the handler of ``optionsite.handlers``.
django.setup(set_prefix=False)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chain.routing import websocket_urlpatterns  # noqa: E402
from optionsite.handlers import ThreadedASGIHandler  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ThreadedASGIHandler(),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
