"""How a WebSocket consumer learns how many bytes its connection holds in the server's write buffer.

daphne queues whatever the application sends in the connection's Twisted transport and writes it to the
socket as the socket takes it, without limit and without telling the application. A client that stops
reading makes that buffer grow, and its acknowledgements cannot show it: they are the client's word, not
proof that it read. The project's server (``optionsite.webserver``) therefore puts, in each WebSocket
connection's ASGI scope, an extension with a function that counts those bytes; the consumer bounds what it
sends by that count (``chain.flow_control.Delivery``; docs/websocket.md, "Falling behind").

Nothing here imports daphne or Twisted: the consumer runs under other servers too (Channels'
``WebsocketCommunicator`` in tests), which add no such extension.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

# The key in ``scope["extensions"]`` (ASGI: a server advertises what it offers beyond the spec there).
EXTENSION = "optionsite.write_buffer"


class WriteBufferExtension(TypedDict):
    buffered_bytes: Callable[[], int]


def buffered_bytes_counter(scope: Mapping[str, Any]) -> Callable[[], int] | None:
    """The function that counts the connection's bytes waiting for the socket; ``None`` when the server
    offers none (it is not ``optionsite.webserver``)."""
    extension: WriteBufferExtension | None = (scope.get("extensions") or {}).get(EXTENSION)
    return None if extension is None else extension["buffered_bytes"]
