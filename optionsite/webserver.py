"""The project's web server: daphne, whose WebSocket connections tell the application how many bytes each
holds for its socket (``optionsite.write_buffer``), and which drops what is sent on a closing WebSocket
rather than ending the application.

    python -m optionsite.webserver -b 127.0.0.1 -p 8000 optionsite.asgi:application

It takes daphne's own arguments. Every launcher runs it rather than the ``daphne`` command
(``optionsite.devstack.web_server_args``; ``docker/compose.yaml``): under a plain daphne the consumers have
only their clients' acknowledgements to go by, and a client that acknowledges without reading grows the
server without bound (docs/websocket.md, "Falling behind").
"""

from __future__ import annotations

from typing import Any

# daphne installs Twisted's asyncio reactor when daphne.server is imported: it comes before any Twisted import.
from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet.abstract import FileDescriptor
from twisted.protocols.policies import ProtocolWrapper

from optionsite.write_buffer import EXTENSION, WriteBufferExtension

__all__ = ["WebServer", "buffered_bytes", "main"]


def buffered_bytes(transport: FileDescriptor) -> int:
    """What the transport holds for the socket: the bytes handed to ``write`` and not yet taken by the
    socket, with those of its current chunk already sent (it is freed whole). Twisted's own measure for
    pausing a producer (``FileDescriptor._isSendBufferFull``); these attributes have no public accessor."""
    return len(transport.dataBuffer) + transport._tempDataLen


def socket_transport(transport: object) -> FileDescriptor:
    """The transport that buffers for the socket, below TLS if there is TLS (which writes through at once)."""
    while isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    if not isinstance(transport, FileDescriptor):
        raise TypeError(f"cannot count what {transport!r} buffers: not a Twisted FileDescriptor")
    return transport


def closing(protocol: object) -> bool:
    """Whether ``protocol`` is a WebSocket past its open state (a close frame was sent or received)."""
    return isinstance(protocol, WebSocketProtocol) and protocol.state in (
        WebSocketProtocol.STATE_CLOSING,
        WebSocketProtocol.STATE_CLOSED,
    )


class WebServer(Server):
    """daphne's server, adding the write-buffer extension to every WebSocket connection's scope, and
    dropping what is sent on a WebSocket that is closing."""

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope["type"] == "websocket":
            transport = socket_transport(protocol.transport)
            extension: WriteBufferExtension = {"buffered_bytes": lambda: buffered_bytes(transport)}
            scope.setdefault("extensions", {})[EXTENSION] = extension
        return super().create_application(protocol, scope)

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        # Between the client's close frame and the end of the TCP connection, autobahn refuses to send
        # (Disconnected, "Attempt to send on a closed protocol") and daphne lets that end the application:
        # the consumer never gets its websocket.disconnect, so it never leaves its channel-layer group, which
        # goes on sending it every event for a day (group_expiry). 414 of 1,200 connections closed by their
        # clients in rounds ended so. daphne drops what is sent once the connection is closed; this drops
        # it from the close frame on, and the disconnect follows as it should.
        if message.get("type") == "websocket.send" and closing(protocol):
            return
        await super().handle_reply(protocol, message)


class WebServerCommandLine(CommandLineInterface):
    server_class = WebServer


def main() -> None:
    WebServerCommandLine.entrypoint()


if __name__ == "__main__":
    main()
