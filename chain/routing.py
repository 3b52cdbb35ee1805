"""WebSocket routes of the live chain (protocol: docs/websocket.md)."""

from django.urls import URLPattern, path

from chain.consumers import ChainConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/chain/<str:asset>/", ChainConsumer.as_asgi()),
]
