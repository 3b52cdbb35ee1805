"""Which pages may open a WebSocket: the site's own, and the origins ``DJANGO_CSRF_TRUSTED_ORIGINS`` lists.

The rule Django's CSRF check applies to the site's forms and API (``CsrfViewMiddleware``): the page's origin is
the socket's own (same scheme, ``ws`` for ``http`` and ``wss`` for ``https``, same host, same port) or is
trusted. Channels' ``AllowedHostsOriginValidator``, used before, matched the host alone, so a page served by any
port or scheme of an allowed host (``http://localhost:3000``) could read the chain through a visitor's
browser. docs/websocket.md, "Origins".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

# The page's scheme for each WebSocket scheme. daphne puts none in the scope (ASGI's default is "ws"), even
# over TLS: behind a proxy that terminates TLS, the public https origin is one to trust.
PAGE_SCHEMES = {"ws": "http", "wss": "https"}


def allowed_hosts() -> list[str]:
    """``ALLOWED_HOSTS``, with the local names when it is empty in DEBUG, as Django reads it for HTTP."""
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return list(settings.ALLOWED_HOSTS)


def trusted_origin(origin: str) -> bool:
    """Whether ``DJANGO_CSRF_TRUSTED_ORIGINS`` lists ``origin``: exactly, or as ``https://*.example.com``,
    every subdomain of example.com over https."""
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, urlsplit(pattern).netloc.lstrip("*"))
        for pattern in trusted
        if "*" in pattern and urlsplit(pattern).scheme == parsed.scheme
    )


def origin_allowed(*, origin: str | None, host: str | None, scheme: str) -> bool:
    """Whether a page of ``origin`` may open a WebSocket that was sent to ``host`` over ``scheme``.

    A ``host`` not in ``ALLOWED_HOSTS`` is refused whatever the origin, as Django refuses such an HTTP
    request. Without a ``Host`` header the origin's host must be an allowed one: no browser's handshake
    comes so (daphne refuses one without ``Host``), only an in-process caller's, Channels' test
    ``WebsocketCommunicator`` for one.
    """
    if not origin:
        return False
    if host is None:
        try:
            origin_host = urlsplit(origin).hostname
        except ValueError:
            return False
        return (origin_host is not None and validate_host(origin_host, allowed_hosts())) or trusted_origin(origin)
    domain, _ = split_domain_port(host)
    if not validate_host(domain, allowed_hosts()):
        return False
    own_origin = f"{PAGE_SCHEMES.get(scheme, 'http')}://{host}"
    return origin.lower() == own_origin.lower() or trusted_origin(origin)


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """The last value of header ``name`` (lower-case, as ASGI gives them), as channels' validator takes it."""
    values = [value for key, value in scope.get("headers", []) if key == name]
    return values[-1].decode("latin1") if values else None


class SameOriginValidator:
    """ASGI middleware: a handshake from a page that ``origin_allowed`` refuses is denied (HTTP 403) before the
    consumer sees it."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator is for WebSocket connections only")
        allowed = origin_allowed(
            origin=header(scope, b"origin"), host=header(scope, b"host"), scheme=scope.get("scheme", "ws")
        )
        if not allowed:
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
